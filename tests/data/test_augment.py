import numpy as np
import pytest

from effseg.data import Augment


def _sample(index=0, h=20, w=16):
    rng = np.random.default_rng(5)
    mask = rng.integers(0, 4, (h, w))
    valid = np.ones((h, w), bool)
    valid[:3] = False
    mask[~valid] = 255
    # channel 0 carries the label so joint geometry can be checked after the transform
    image = np.stack([mask.astype(np.float32), rng.normal(size=(h, w)).astype(np.float32)])
    image[:, ~valid] = 0
    return {"image": image, "mask": mask, "valid": valid, "index": index}


def test_same_seed_and_index_reproduce_other_index_differs():
    aug = Augment(scale=(0.5, 1.5), crop=12, brightness=0.2, contrast=0.2, noise=0.1, seed=7)
    a, b = aug(_sample(3)), Augment(scale=(0.5, 1.5), crop=12, brightness=0.2, contrast=0.2, noise=0.1, seed=7)(_sample(3))
    assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["mask"], b["mask"])
    outs = [aug(_sample(i))["image"] for i in range(6)]
    assert any(not np.array_equal(outs[0], o) for o in outs[1:])
    aug.set_epoch(1)
    assert not np.array_equal(aug(_sample(3))["image"], a["image"])


def test_geometry_is_joint_and_mask_nearest():
    for i in range(12):
        out = Augment(scale=(0.6, 1.7), crop=14, seed=1)(_sample(i))
        img, mask, valid = out["image"], out["mask"], out["valid"]
        assert img.shape == (2, 14, 14) and mask.shape == valid.shape == (14, 14)
        assert set(np.unique(mask)) <= {0, 1, 2, 3, 255}        # nearest: no blended labels
        assert (mask[~valid] == 255).all() and (img[:, ~valid] == 0).all()
    for i in range(8):  # without scaling the label channel must follow the mask exactly
        out = Augment(seed=2)(_sample(i))
        v = out["valid"]
        assert np.array_equal(out["image"][0][v], out["mask"][v].astype(np.float32))


def test_photometric_only_on_valid_pixels():
    s = _sample()
    out = Augment(flip=False, rot90=False, brightness=0.5, contrast=0.5, noise=0.3, seed=0)(s)
    assert np.array_equal(out["mask"], s["mask"])
    assert (out["image"][:, ~s["valid"]] == 0).all()
    assert not np.allclose(out["image"][:, s["valid"]], s["image"][:, s["valid"]])


def test_argument_errors():
    with pytest.raises(ValueError, match="scale must be"):
        Augment(scale=(2, 1))
    with pytest.raises(ValueError, match="crop must be a positive int"):
        Augment(crop=0)
    with pytest.raises(ValueError, match="contrast must be < 1"):
        Augment(contrast=1.5)
