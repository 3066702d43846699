"""Non-finite pixels, nodata values and alpha 0 are nodata: label 255, transparent in the
colour PNG, replaced by the band mean before the model so neighbours are unaffected."""
import numpy as np
import pytest
from bundle_cases import MEAN, make_bundle
from no_torch import run_without_torch
from PIL import Image

from effseg.runtime import Predictor

_MAIN = """
from effseg.cli import main
sys.exit(main({args!r}))
"""


def _img(h=40, w=44, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3)).astype(np.float32)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_block_is_nodata_and_does_not_poison_neighbours(tmp_path, bad):
    p = Predictor(make_bundle(tmp_path, height=16, width=16))  # 3x3 conv: neighbours see the block
    img = _img()
    img[10:20, 5:30] = bad
    img[30, 40, 1] = bad  # one band of one pixel is enough
    mask = np.zeros(img.shape[:2], bool)
    mask[10:20, 5:30] = True
    mask[30, 40] = True
    labels = p.predict(img)
    assert (labels[mask] == 255).all() and (labels[~mask] < 4).all()
    # Everywhere else: the answer for the image with the band mean in those pixels.
    filled = img.copy()
    filled[mask] = MEAN
    np.testing.assert_array_equal(labels[~mask], p.predict(filled)[~mask])
    logits = p.predict_logits(img)
    assert np.isnan(logits[:, mask]).all() and np.isfinite(logits[:, ~mask]).all()


def test_nonfinite_error_mode_names_the_option(tmp_path):
    p = Predictor(make_bundle(tmp_path), nonfinite="error")
    img = _img()
    img[3, 7, 2] = np.nan
    with pytest.raises(ValueError, match=r"non-finite .* row 3, column 7; nonfinite='error'"):
        p.predict(img)
    with pytest.raises(ValueError, match="nonfinite must be one of nodata, error"):
        Predictor(make_bundle(tmp_path, name="b2"), nonfinite="ignore")


def test_bundle_and_file_nodata_values(tmp_path):
    p = Predictor(make_bundle(tmp_path, nodata=0))
    img = np.random.default_rng(1).integers(1, 256, (20, 20, 3), dtype=np.uint8)
    img[:5] = 0
    img[10, 10, 0] = 0  # not all bands: a real (dark) pixel
    labels = p.predict(img)
    assert (labels[:5] == 255).all() and (labels[5:] < 4).all()
    labels = p.predict(img, nodata=7)  # the file's own value wins over the bundle's
    assert (labels < 4).all()


def test_alpha_zero_is_nodata_and_opaque_alpha_is_dropped(tmp_path):
    p = Predictor(make_bundle(tmp_path, kernel=1))
    rgb = np.random.default_rng(2).integers(0, 256, (16, 20, 3), dtype=np.uint8)
    alpha = np.full((16, 20), 255, np.uint8)
    Image.fromarray(np.dstack([rgb, alpha])).save(tmp_path / "opaque.png")
    np.testing.assert_array_equal(p.predict_file(tmp_path / "opaque.png"), p.predict(rgb))
    alpha[:4] = 0
    Image.fromarray(np.dstack([rgb, alpha])).save(tmp_path / "holes.png")
    labels = p.predict_file(tmp_path / "holes.png")
    assert (labels[:4] == 255).all()
    np.testing.assert_array_equal(labels[4:], p.predict(rgb)[4:])


def test_effseg_run_writes_nodata_and_can_refuse_it(tmp_path):
    bundle = make_bundle(tmp_path, kernel=1)
    src = tmp_path / "imgs"
    src.mkdir()
    img = _img(16, 16)
    img[:3] = np.nan
    np.save(src / "nan.npy", img)
    out = tmp_path / "out"
    r = run_without_torch(_MAIN.format(args=["run", str(bundle), str(src), "--out", str(out), "--no-progress"]))
    assert r.returncode == 0, r.stderr
    labels = np.asarray(Image.open(out / "nan.npy_labels.png"))
    assert (labels[:3] == 255).all() and (labels[3:] < 4).all()
    colour = np.asarray(Image.open(out / "nan.npy_color.png"))
    assert colour.shape == (16, 16, 4)
    assert (colour[:3] == 0).all() and (colour[3:, :, 3] == 255).all()
    r = run_without_torch(_MAIN.format(args=["run", str(bundle), str(src), "--out", str(tmp_path / "o2"),
                                             "--no-progress", "--nonfinite", "error"]))
    assert r.returncode == 1
    assert "nan.npy" in r.stderr and "non-finite" in r.stderr and "Traceback" not in r.stderr
