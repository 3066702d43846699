"""predict_array: an in-memory image through the raster pipeline gives the class map
that the same pixels saved as a raster file give, bit for bit (odd shapes, TTA,
label-output and static-size bundles), and is refused when it does not fit the model."""
import numpy as np
import pytest
import rasterio
from bundle_cases import make_bundle
from raster_cases import rgb, write_tif

from effseg.predict import PredictOptions, predict_raster
from effseg.predict.arrays import predict_array
from effseg.runtime import Predictor


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("b")
    kw = dict(dynamic_hw=True, tile_size=32, tile_overlap=8, height=32, width=32)
    return {"conv3": Predictor(make_bundle(tmp, "c3", kernel=3, dynamic_batch=True, **kw)),
            "pointwise": Predictor(make_bundle(tmp, "pw", kernel=1, **kw)),
            "labels": Predictor(make_bundle(tmp, "lab", kernel=3, output_kind="labels", **kw)),
            "static": Predictor(make_bundle(tmp, "st", kernel=3, height=16, width=16, tile_overlap=4)),
            "u16": Predictor(make_bundle(tmp, "u16", kernel=1, pixel_dtype="uint16", stats_scale=257.0, **kw)),
            "grey": Predictor(make_bundle(tmp, "g", channels=1, kernel=1, **kw))}


def _raster_labels(p, img_chw, tmp_path, **kw):
    write_tif(tmp_path / "x.tif", img_chw)
    with rasterio.open(predict_raster(p, tmp_path / "x.tif", tmp_path / "o",
                                      PredictOptions(progress=False, **kw)).output) as d:
        return d.read(1)


@pytest.mark.parametrize(("name", "h", "w", "kw"), [
    ("conv3", 45, 70, {}),                             # several tile rows and columns, ragged edges
    ("conv3", 7, 5, {}),                               # smaller than one tile: reflected out to it
    ("conv3", 61, 33, {"tta": "flip", "batch": 3}),
    ("conv3", 50, 50, {"tile": 64, "overlap": 16, "blend": "linear"}),
    ("labels", 45, 70, {"tta": "d4"}),
    ("static", 37, 29, {}),
])
def test_array_equals_the_same_pixels_as_a_raster(tmp_path, bundles, name, h, w, kw):
    p = bundles[name]
    img = rgb(h, w, seed=h * w)
    got = predict_array(p, np.moveaxis(img, 0, -1), PredictOptions(**kw))
    assert got.shape == (h, w) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, _raster_labels(p, img, tmp_path, **kw))
    assert len(np.unique(got)) > 1, "a constant map would make the comparison vacuous"


def test_pointwise_model_matches_one_whole_image_pass(bundles):
    # A 1x1 conv sees no neighbours: tiles and blending must not change any pixel's class.
    p = bundles["pointwise"]
    img = np.moveaxis(rgb(53, 41, seed=3), 0, -1)
    np.testing.assert_array_equal(predict_array(p, img), p.predict(img))


def test_nodata_value_and_valid_mask(bundles):
    p = bundles["pointwise"]
    img = np.moveaxis(rgb(20, 30, seed=4), 0, -1).copy()
    img[:4, :5] = 7
    valid = np.ones((20, 30), bool)
    valid[-3:, -2:] = False
    got = predict_array(p, img, nodata=7, valid=valid)
    assert (got[:4, :5] == 255).all() and (got[-3:, -2:] == 255).all()
    ref = p.predict(img, nodata=7, valid=valid)
    np.testing.assert_array_equal(got, ref)


def test_bad_arrays_are_refused_by_name(bundles):
    p = bundles["conv3"]
    with pytest.raises(ValueError, match=r"frame 3 must be \(H, W, 3\) for this model \(3 channel\(s\)\), got "
                                         r"shape \(8, 8, 4\)"):
        predict_array(p, np.zeros((8, 8, 4), np.uint8), name="frame 3")
    with pytest.raises(ValueError, match=r"image must be \(H, W, 3\).*got shape \(8, 8\)"):
        predict_array(p, np.zeros((8, 8), np.uint8))
    with pytest.raises(TypeError, match="image must be a numpy array"):
        predict_array(p, [[1, 2, 3]])
    with pytest.raises(ValueError, match=r"holds uint8 pixels, but the model takes uint16 pixels"):
        predict_array(bundles["u16"], np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="holds bool pixels; expected integers or floats"):
        predict_array(p, np.zeros((8, 8, 3), bool))
    with pytest.raises(ValueError, match=r"valid must be an \(H, W\) = \(8, 8\) mask, got shape \(8, 9\)"):
        predict_array(p, np.zeros((8, 8, 3), np.uint8), valid=np.ones((8, 9), bool))
    with pytest.raises(ValueError, match="--tta must be one of"):
        predict_array(p, np.zeros((8, 8, 3), np.uint8), PredictOptions(tta="rot"))


def test_grey_model_takes_a_2d_array(bundles):
    p = bundles["grey"]
    img = rgb(19, 23, bands=1, seed=5)[0]
    np.testing.assert_array_equal(predict_array(p, img), p.predict(img[:, :, None]))
