"""--bands, pixel types, band-count errors, --tta, --batch, --tile/--overlap checks and
label-output bundles."""
import numpy as np
import pytest
import rasterio
from bundle_cases import make_bundle
from raster_cases import rgb, write_tif

from effseg.predict import PredictOptions, predict_raster
from effseg.runtime import Predictor


def _labels(p, path, out, **kw):
    with rasterio.open(predict_raster(p, path, out, PredictOptions(progress=False, **kw)).output) as d:
        return d.read(1)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("b")
    kw = dict(dynamic_hw=True, tile_size=32, tile_overlap=8, height=32, width=32)
    return {"pointwise": Predictor(make_bundle(tmp, "pw", kernel=1, dynamic_batch=True, **kw)),
            "conv3": Predictor(make_bundle(tmp, "c3", kernel=3, dynamic_batch=True, **kw)),
            "u16": Predictor(make_bundle(tmp, "u16", kernel=1, pixel_dtype="uint16", stats_scale=257.0, **kw)),
            "labels": Predictor(make_bundle(tmp, "lab", kernel=1, output_kind="labels", **kw)),
            "static": Predictor(make_bundle(tmp, "st", kernel=1, height=32, width=32, tile_overlap=8))}


def test_bands_pick_and_reorder(tmp_path, bundles):
    p = bundles["pointwise"]
    img = rgb(40, 50, bands=5)
    write_tif(tmp_path / "ms.tif", img)
    got = _labels(p, tmp_path / "ms.tif", tmp_path / "o", bands="4,3,2")
    np.testing.assert_array_equal(got, p.predict(np.moveaxis(img[[3, 2, 1]], 0, -1)))
    with pytest.raises(ValueError, match=r"ms.tif has 5 band\(s\) to feed the model, but the model takes 3: "
                                         r"choose 3 with --bands"):
        _labels(p, tmp_path / "ms.tif", tmp_path / "o")
    with pytest.raises(ValueError, match=r"--bands 4,3 picks 2 band\(s\), but the model takes 3"):
        _labels(p, tmp_path / "ms.tif", tmp_path / "o", bands="4,3")
    with pytest.raises(ValueError, match=r"--bands 6,1,2 asks for band 6, but input ms.tif has 5 band\(s\)"):
        _labels(p, tmp_path / "ms.tif", tmp_path / "o", bands="6,1,2")


def test_uint16_int16_and_grey(tmp_path, bundles):
    img8 = rgb(30, 40, seed=1)
    write_tif(tmp_path / "u16.tif", img8.astype(np.uint16) * 257)
    want = bundles["pointwise"].predict(np.moveaxis(img8, 0, -1))
    assert (_labels(bundles["u16"], tmp_path / "u16.tif", tmp_path / "o") == want).mean() > 0.999
    with pytest.raises(ValueError, match=r"holds uint16 pixels, but the model takes uint8 pixels"):
        _labels(bundles["pointwise"], tmp_path / "u16.tif", tmp_path / "o")
    write_tif(tmp_path / "i16.tif", rgb(30, 40).astype(np.int16))
    with pytest.raises(ValueError, match=r"holds int16 pixels, .*input.pixel_dtype 'uint16'"):
        _labels(bundles["u16"], tmp_path / "i16.tif", tmp_path / "o")
    write_tif(tmp_path / "g.tif", img8[:1])
    with pytest.raises(ValueError, match="1 band \\(grey\\), but the model takes 3: pass --replicate-grey"):
        _labels(bundles["pointwise"], tmp_path / "g.tif", tmp_path / "o")
    got = _labels(bundles["pointwise"], tmp_path / "g.tif", tmp_path / "o", replicate_grey=True)
    np.testing.assert_array_equal(got, bundles["pointwise"].predict(np.repeat(img8[0][..., None], 3, -1)))


def test_tta_batch_and_label_bundles(tmp_path, bundles):
    write_tif(tmp_path / "a.tif", rgb(70, 90, seed=2))
    o = tmp_path / "o"
    pw = bundles["pointwise"]
    base = _labels(pw, tmp_path / "a.tif", o)
    # A pointwise model commutes with every flip and rotation: TTA must give the same map.
    for tta in ("flip", "d4"):
        np.testing.assert_array_equal(_labels(pw, tmp_path / "a.tif", o, tta=tta), base)
    # A 3x3 model does not: TTA changes some pixels, but batching never does.
    c3 = bundles["conv3"]
    b1 = _labels(c3, tmp_path / "a.tif", o, batch=1)
    np.testing.assert_array_equal(_labels(c3, tmp_path / "a.tif", o, batch=7), b1)
    assert (_labels(c3, tmp_path / "a.tif", o, tta="d4") != b1).any()
    # Labels outputs blend as one-hot votes: a pointwise labels model gives its own labels.
    np.testing.assert_array_equal(_labels(bundles["labels"], tmp_path / "a.tif", o, tta="flip"),
                                  bundles["labels"].predict(np.moveaxis(rgb(70, 90, seed=2), 0, -1)))
    with pytest.raises(ValueError, match="--probs needs a bundle whose model outputs logits"):
        _labels(bundles["labels"], tmp_path / "a.tif", o, probs=True)


def test_tile_and_overlap_arguments(tmp_path, bundles):
    write_tif(tmp_path / "a.tif", rgb(70, 90, seed=3))
    o = tmp_path / "o"
    want = _labels(bundles["pointwise"], tmp_path / "a.tif", o)
    np.testing.assert_array_equal(_labels(bundles["pointwise"], tmp_path / "a.tif", o, tile=64, overlap=0), want)
    np.testing.assert_array_equal(_labels(bundles["static"], tmp_path / "a.tif", o), want)
    with pytest.raises(ValueError, match=r"--tile 64: this bundle's model takes only 32x32 tiles"):
        _labels(bundles["static"], tmp_path / "a.tif", o, tile=64)
    with pytest.raises(ValueError, match=r"--tile must be a multiple of 32"):
        _labels(bundles["pointwise"], tmp_path / "a.tif", o, tile=48)
    with pytest.raises(ValueError, match=r"--overlap must be between 0 and half the 32x32 tile \(16\), got 20"):
        _labels(bundles["pointwise"], tmp_path / "a.tif", o, overlap=20)
    with pytest.raises(ValueError, match=r"--batch must be a positive integer"):
        _labels(bundles["pointwise"], tmp_path / "a.tif", o, batch=0)
    with pytest.raises(ValueError, match=r"--tta must be one of none, flip, d4, got 'd8'"):
        _labels(bundles["pointwise"], tmp_path / "a.tif", o, tta="d8")
