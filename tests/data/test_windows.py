import pickle

import numpy as np
import pytest

from effseg.data import GeoWindows, compute_band_stats
from effseg.data import windows as windows_mod

H, W = 70, 90


@pytest.fixture
def scene(tmp_path, tif):
    rng = np.random.default_rng(0)
    img = rng.integers(1, 4000, (3, H, W)).astype(np.uint16)
    img[:, :, :5] = 0                                   # nodata strip on the left
    lab = rng.integers(1, 4, (H, W)).astype(np.float32)  # raw codes 1..3
    lab[-2:] = -99999.0                                  # label nodata at the bottom
    return (tif(tmp_path / "img.tif", img, nodata=0), tif(tmp_path / "lab.tif", lab, nodata=-99999.0), img, lab)


class _Recorder:
    """Stands in for a rasterio dataset and records every read's window."""

    def __init__(self, src, log):
        self._src, self._log = src, log

    def __getattr__(self, name):
        return getattr(self._src, name)

    def read(self, *args, **kwargs):
        self._log.append(kwargs.get("window"))
        return self._src.read(*args, **kwargs)


def test_reads_only_windows(scene, monkeypatch):
    img_path, lab_path, *_ = scene
    log = []
    real = windows_mod._open
    monkeypatch.setattr(windows_mod, "_open", lambda p: _Recorder(real(p), log))
    ds = GeoWindows((img_path, lab_path), size=32, mode="random", length=5, label_map={1.0: 0, 2.0: 1, 3.0: 2},
                    stats={"mean": [0] * 3, "std": [1] * 3})
    for i in range(len(ds)):
        x, m = ds[i]
        assert x.shape == (3, 32, 32) and m.shape == (32, 32)
    assert len(log) == 10
    assert all(w is not None and w.height <= 32 and w.width <= 32 for w in log)


def test_grid_covers_every_pixel_and_maps_labels(scene):
    img_path, lab_path, img, lab = scene
    ds = GeoWindows([(img_path, lab_path)], size=32, mode="grid", label_map={1.0: 0, 2.0: 1, 3.0: 2})
    assert ds.num_classes == 3
    seen = np.zeros((H, W), int)
    for i in range(len(ds)):
        p, r, c = ds.window(i)
        item = ds.raw(i)
        want = np.where(lab[r:r + 32, c:c + 32] < 0, 255, lab[r:r + 32, c:c + 32] - 1).astype(np.int64)
        want[img[0, r:r + 32, c:c + 32] == 0] = 255
        assert np.array_equal(item["mask"], want)
        seen[r:r + 32, c:c + 32] += 1
    assert (seen > 0).all()
    stats = compute_band_stats(ds)
    good = img[:, :, 5:].reshape(3, -1).astype(np.float64)
    assert stats["mean"][0] != pytest.approx(img[0].mean())   # nodata zeros are excluded...
    assert min(stats["mean"]) >= good.min()                   # ...so means stay inside the valid range


def test_random_windows_are_seeded(scene):
    img_path, lab_path, *_ = scene
    kw = dict(size=16, mode="random", length=8, label_map={1.0: 0, 2.0: 1, 3.0: 2})
    a = GeoWindows((img_path, lab_path), seed=1, **kw)
    b = GeoWindows((img_path, lab_path), seed=1, **kw)
    c = GeoWindows((img_path, lab_path), seed=2, **kw)
    assert [a.window(i) for i in range(8)] == [b.window(i) for i in range(8)]
    assert [a.window(i) for i in range(8)] != [c.window(i) for i in range(8)]
    assert np.array_equal(a[3][0].numpy(), b[3][0].numpy())
    copy = pickle.loads(pickle.dumps(a))  # what DataLoader workers get: handles reopen
    assert np.array_equal(copy[3][1].numpy(), a[3][1].numpy())
    a.set_epoch(1)
    assert [a.window(i) for i in range(8)] != [b.window(i) for i in range(8)]


def test_small_raster_is_padded(tmp_path, tif):
    i = tif(tmp_path / "i.tif", np.ones((1, 10, 12), np.float32))
    lab = tif(tmp_path / "l.tif", np.zeros((10, 12), np.uint8))
    x, m = GeoWindows((i, lab), size=16, mode="grid", num_classes=1, stats={"mean": [0], "std": [1]})[0]
    assert x.shape == (1, 16, 16) and (m[10:] == 255).all() and (m[:, 12:] == 255).all() and (x[:, 10:] == 0).all()


def test_errors(scene, tmp_path, tif):
    img_path, lab_path, *_ = scene
    other = tif(tmp_path / "other.tif", np.zeros((H, W + 1), np.uint8))
    with pytest.raises(ValueError, match=r"is 70x90 but its label .*other\.tif' is 70x91"):
        GeoWindows((img_path, other), size=16, num_classes=3)
    with pytest.raises(ValueError, match="mode must be 'random' or 'grid'"):
        GeoWindows((img_path, lab_path), size=16, mode="tiles", num_classes=3)
    with pytest.raises(ValueError, match="num_classes is needed"):
        GeoWindows((img_path, lab_path), size=16)
    ds = GeoWindows((img_path, lab_path), size=16, mode="grid", label_map={1.0: 0, 2.0: 1},
                    stats={"mean": [0] * 3, "std": [1] * 3})
    with pytest.raises(ValueError, match=r"raw value 3\.0, which label_map does not map"):
        ds[0]
