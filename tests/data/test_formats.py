import numpy as np
import pytest

from effseg.data import SegFolder
from effseg.data.formats import ISPRS_PALETTE, UAVID_PALETTE

RNG = np.random.default_rng(3)


def _rgb(h=6, w=5):
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _colour(ids, palette, black=None):
    out = np.zeros((*ids.shape, 3), np.uint8)
    for i, c in enumerate(palette):
        out[ids == i] = c
    if black is not None:
        out[black] = 0
    return out


def _stats(c=3):
    return {"mean": [0.0] * c, "std": [1.0] * c}


def test_loveda_layout_and_coding(tmp_path, png):
    raws = {}
    for split in ("Train", "Val"):
        for domain in ("Urban", "Rural"):
            raw = RNG.integers(0, 8, (6, 5)).astype(np.uint8)
            stem = f"{len(raws)}"
            png(tmp_path / split / domain / "images_png" / f"{stem}.png", _rgb())
            png(tmp_path / split / domain / "masks_png" / f"{stem}.png", raw)
            raws[(split, domain)] = raw
    ds = SegFolder(tmp_path, "val", format="loveda")
    assert len(ds) == 2 and ds.num_classes == 7 and ds.classes[0] == "background"
    _, m = ds[0]                                  # Urban comes first
    raw = raws[("Val", "Urban")]
    assert (m.numpy() == np.where(raw == 0, 255, raw.astype(np.int64) - 1)).all()
    assert len(ds.stats["mean"]) == 3             # from Train


def test_potsdam_original_tiles_rgb_labels(tmp_path, tif):
    ids = RNG.integers(0, 6, (6, 5))
    black = np.zeros((6, 5), bool)
    black[0, :2] = True
    tif(tmp_path / "train_images/top_potsdam_2_10_RGB.tif", np.moveaxis(_rgb(), -1, 0))
    tif(tmp_path / "train_masks/top_potsdam_2_10_label.tif", np.moveaxis(_colour(ids, ISPRS_PALETTE, black), -1, 0))
    ds = SegFolder(tmp_path, "train", format="potsdam")
    assert ds.classes[1] == "building" and ds.palette[1] == (0, 0, 255)
    _, m = ds[0]
    assert (m.numpy() == np.where(black, 255, ids)).all()


def test_vaihingen_processed_ids_and_val_falls_back_to_test(tmp_path, tif, png):
    ids = RNG.integers(0, 7, (6, 5)).astype(np.uint8)     # 6 = GeoSeg's ignore
    tif(tmp_path / "test/images_1024/top_mosaic_09cm_area1_0_0.tif", np.moveaxis(_rgb(), -1, 0))
    png(tmp_path / "test/masks_1024/top_mosaic_09cm_area1_0_0.png", ids)
    ds = SegFolder(tmp_path, "val", format="vaihingen", stats=_stats())
    _, m = ds[0]
    assert (m.numpy() == np.where(ids == 6, 255, ids)).all()


def test_vaihingen_original_prefers_eroded_test_masks(tmp_path, tif):
    ids = RNG.integers(0, 6, (6, 5))
    tif(tmp_path / "test_images/top_mosaic_09cm_area1.tif", np.moveaxis(_rgb(), -1, 0))
    tif(tmp_path / "test_masks/top_mosaic_09cm_area1.tif", np.moveaxis(_colour(ids, ISPRS_PALETTE), -1, 0))
    eroded = _colour(ids, ISPRS_PALETTE, black=ids == 4)
    tif(tmp_path / "test_masks_eroded/top_mosaic_09cm_area1.tif", np.moveaxis(eroded, -1, 0))
    _, m = SegFolder(tmp_path, "test", format="vaihingen", stats=_stats())[0]
    assert (m.numpy() == np.where(ids == 4, 255, ids)).all()


def test_uavid_original_sequences_rgb_labels(tmp_path, png):
    truth = {}
    for seq in ("seq16", "seq17"):
        ids = RNG.integers(0, 8, (6, 5))
        png(tmp_path / "uavid_val" / seq / "Images" / "000000.png", _rgb())
        png(tmp_path / "uavid_val" / seq / "Labels" / "000000.png", _colour(ids, UAVID_PALETTE))
        truth[seq] = ids
    ds = SegFolder(tmp_path, "val", format="uavid", stats=_stats())
    assert len(ds) == 2 and ds.num_classes == 8 and ds.classes[-1] == "clutter"
    assert (ds[1][1].numpy() == truth["seq17"]).all()      # black is clutter (7) in UAVid


def test_uavid_processed_ids(tmp_path, png):
    ids = RNG.integers(0, 8, (6, 5)).astype(np.uint8)
    ids[0, 0] = 255
    png(tmp_path / "train/images/a.png", _rgb())
    png(tmp_path / "train/masks/a.png", ids)
    assert (SegFolder(tmp_path, "train", format="uavid")[0][1].numpy() == ids).all()


def test_unknown_colour_is_an_error(tmp_path, png):
    lab = _colour(np.zeros((6, 5), int), UAVID_PALETTE)
    lab[2, 2] = (1, 2, 3)
    png(tmp_path / "train/images/a.png", _rgb())
    png(tmp_path / "train/masks/a.png", lab)
    with pytest.raises(ValueError, match=r"colour \(1, 2, 3\), which is no class of this format"):
        SegFolder(tmp_path, "train", format="uavid", stats=_stats())[0]


def test_generic_multiband_mask_is_an_error(tmp_path, png):
    png(tmp_path / "train/images/a.png", _rgb())
    png(tmp_path / "train/masks/a.png", _rgb())
    with pytest.raises(ValueError, match=r"a\.png' has shape \(6, 5, 3\); expected a single band"):
        SegFolder(tmp_path, "train", num_classes=3, stats=_stats())[0]
