import json
import sys

import numpy as np
import pytest
import torch

from effseg.data import SegFolder, compute_band_stats, infer_bands, infer_num_classes


def _rgb_layout(root, png, splits=("train", "val"), n=2, size=(12, 10)):
    rng = np.random.default_rng(0)
    for split in splits:
        for i in range(n):
            png(root / split / "images" / f"t{i}.png", rng.integers(0, 256, (*size, 3), dtype=np.uint8))
            png(root / split / "masks" / f"t{i}.png", rng.integers(0, 3, size, dtype=np.uint8))
    return root


def test_png_layout_pillow_only_and_normalisation(tmp_path, png, monkeypatch):
    # PNG layouts must not need rasterio.
    monkeypatch.setitem(sys.modules, "rasterio", None)
    root = _rgb_layout(tmp_path, png)
    val = SegFolder(root, "val")
    x, m = val[1]
    assert x.dtype == torch.float32 and x.shape == (3, 12, 10)
    assert m.dtype == torch.int64 and m.shape == (12, 10)
    train = SegFolder(root, "train")
    pix = np.concatenate([np.asarray(train.raw(i)["image"], np.float64).reshape(-1, 3) for i in range(2)])
    assert val.stats["mean"] == pytest.approx(pix.mean(0).tolist())
    assert val.stats["std"] == pytest.approx(pix.std(0).tolist())
    raw = val.raw(1)["image"].astype(np.float64)
    want = (raw - pix.mean(0)) / pix.std(0)
    assert np.allclose(x.numpy(), np.moveaxis(want, -1, 0), atol=1e-5)
    assert val.num_classes == 3 and len(val.palette) == 3


@pytest.mark.parametrize("dtype,nodata", [("uint16", 0), ("int16", -32768), ("float32", -9999.0)])
def test_geotiff_nodata_and_nonfinite_are_ignored(tmp_path, tif, dtype, nodata):
    rng = np.random.default_rng(1)
    img = rng.integers(100, 5000, (4, 8, 9)).astype(dtype)
    img[:, 0, :] = nodata            # a nodata row (all bands)
    img[2, 5, 5] = nodata            # one band missing is enough
    if dtype == "float32":
        img[1, 3, 3] = np.nan
        img[0, 4, 4] = np.inf
    mask = rng.integers(0, 2, (8, 9)).astype(np.uint8)
    tif(tmp_path / "train/images/a.tif", img, nodata=nodata)
    tif(tmp_path / "train/masks/a.tif", mask)
    ds = SegFolder(tmp_path, "train", num_classes=2)
    x, m = ds[0]
    bad = np.zeros((8, 9), bool)
    bad[0] = True
    bad[5, 5] = True
    if dtype == "float32":
        bad[3, 3] = bad[4, 4] = True
    assert (m.numpy()[bad] == 255).all() and (m.numpy()[~bad] == mask[~bad]).all()
    assert torch.isfinite(x).all() and (x.numpy()[:, bad] == 0).all()
    good = np.moveaxis(img, 0, -1)[~bad].astype(np.float64)
    stats = compute_band_stats(ds)
    assert stats["pixels"] == good.shape[0]
    assert stats["mean"] == pytest.approx(good.mean(0).tolist(), rel=1e-9)
    assert stats["std"] == pytest.approx(good.std(0).tolist(), rel=1e-6)


def test_bands_selection_and_explicit_stats(tmp_path, tif):
    img = np.stack([np.full((4, 4), v, np.uint16) for v in (10, 20, 30)])
    tif(tmp_path / "train/images/a.tif", img)
    tif(tmp_path / "train/masks/a.tif", np.zeros((4, 4), np.uint8))
    ds = SegFolder(tmp_path, "train", bands=[2, 0], stats={"mean": [30, 0], "std": [1, 5]}, num_classes=1)
    x, _ = ds[0]
    assert x.shape == (2, 4, 4)
    assert torch.all(x[0] == 0) and torch.all(x[1] == 2)
    assert infer_bands(tmp_path) == 3
    with pytest.raises(ValueError, match=r"bands entry 3 .* 0\.\.2"):
        SegFolder(tmp_path, "train", bands=[3], num_classes=1)[0]
    with pytest.raises(ValueError, match="expected 2 \\(one per band\\)"):
        SegFolder(tmp_path, "train", bands=[2, 0], stats={"mean": [1], "std": [1]}, num_classes=1)[0]


def test_constant_band_std_is_one(tmp_path, tif):
    tif(tmp_path / "train/images/a.tif", np.full((1, 3, 3), 7, np.uint16))
    tif(tmp_path / "train/masks/a.tif", np.zeros((3, 3), np.uint8))
    stats = SegFolder(tmp_path, "train", num_classes=1).stats
    assert stats["std"] == [1.0] and stats["mean"] == [7.0]


def test_infer_num_classes(tmp_path, png):
    root = _rgb_layout(tmp_path, png)
    png(root / "train/masks/t0.png", np.array([[4, 255], [0, 1]], np.uint8).repeat(6, 0).repeat(5, 1))
    assert infer_num_classes(root) == 5           # max id 4, 255 is not a class
    (root / "classes.json").write_text(json.dumps({"classes": ["a", "b", "c", "d", "e", "f"]}))
    assert infer_num_classes(root) == 6
    assert SegFolder(root, "val").classes == ["a", "b", "c", "d", "e", "f"]
    assert infer_num_classes(root, format="potsdam") == 6


def test_error_missing_mask(tmp_path, png):
    root = _rgb_layout(tmp_path, png)
    (root / "train/masks/t1.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"no mask for image\(s\) t1\.png .*same stem"):
        SegFolder(root, "train")


def test_error_size_mismatch(tmp_path, png):
    root = _rgb_layout(tmp_path, png)
    png(root / "val/masks/t0.png", np.zeros((12, 11), np.uint8))
    with pytest.raises(ValueError, match=r"t0\.png' is 12x10 but its mask .*t0\.png' is 12x11"):
        SegFolder(root, "val", num_classes=3, stats={"mean": [0] * 3, "std": [1] * 3})[0]


def test_error_label_out_of_range(tmp_path, png):
    root = _rgb_layout(tmp_path, png)
    bad = np.zeros((12, 10), np.uint8)
    bad[0, 0], bad[1, 1] = 7, 255
    png(root / "val/masks/t1.png", bad)
    ds = SegFolder(root, "val", num_classes=3, stats={"mean": [0] * 3, "std": [1] * 3})
    ds[0]
    with pytest.raises(ValueError, match=r"t1\.png' holds label\(s\) \[7\]; expected class ids 0\.\.2 or 255"):
        ds[1]


def test_error_empty_split_and_unknown_format(tmp_path, png):
    root = _rgb_layout(tmp_path, png, splits=("train",))
    with pytest.raises(FileNotFoundError, match=r"split 'val' .* holds no images; expected ROOT/\{split\}/images"):
        SegFolder(root, "val")
    (root / "test/images").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="split 'test'"):
        SegFolder(root, "test")
    with pytest.raises(ValueError, match=r"format='coco' is unknown; expected one of folder, loveda"):
        SegFolder(root, "train", format="coco")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        SegFolder(tmp_path / "nope", "train")


def test_geotiff_without_rasterio_says_so(tmp_path, tif, monkeypatch):
    tif(tmp_path / "train/images/a.tif", np.zeros((1, 3, 3), np.uint16))
    tif(tmp_path / "train/masks/a.tif", np.zeros((3, 3), np.uint8))
    ds = SegFolder(tmp_path, "train", num_classes=1, stats={"mean": [0], "std": [1]})
    monkeypatch.setitem(sys.modules, "rasterio", None)
    with pytest.raises(RuntimeError, match=r"a\.tif' needs rasterio.*effseg\[geo\]"):
        ds[0]


def test_dataloader_batches(tmp_path, png):
    root = _rgb_layout(tmp_path, png, n=4)
    ds = SegFolder(root, "train")
    x, m = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert x.shape == (4, 3, 12, 10) and m.shape == (4, 12, 10)
