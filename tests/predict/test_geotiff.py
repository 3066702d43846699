"""The class map GeoTIFF: the source's size, CRS, transform and block layout, deflate,
colour table, class names, 255 at nodata; --probs, --cog; the same classes as the
in-memory Predictor."""
import numpy as np
import pytest
import rasterio
from bundle_cases import make_bundle
from raster_cases import CRS, rgb, transform, write_tif

from effseg.predict import PredictOptions, predict_files, predict_raster
from effseg.runtime import Predictor


@pytest.fixture(scope="module")
def pointwise(tmp_path_factory):
    # kernel 1: every pixel's answer depends on that pixel only, so tiling, blending and
    # TTA cannot change it and the whole-image Predictor is the exact reference.
    tmp = tmp_path_factory.mktemp("b")
    return Predictor(make_bundle(tmp, kernel=1, dynamic_hw=True, dynamic_batch=True, tile_size=32, tile_overlap=8,
                                 height=32, width=32, classes=4))


def test_georeference_size_blocks_and_classes_round_trip(tmp_path, pointwise):
    img = rgb(150, 290)
    write_tif(tmp_path / "scene.tif", img, tiled=True, block=256)
    r = predict_raster(pointwise, tmp_path / "scene.tif", tmp_path / "out", PredictOptions(batch=3))
    assert r.output == tmp_path / "out" / "scene.tif" and r.tiles == 6 * 12
    with rasterio.open(r.output) as d:
        assert (d.width, d.height, d.count, d.dtypes[0]) == (290, 150, 1, "uint8")
        assert d.crs == rasterio.crs.CRS.from_string(CRS) and d.transform == transform()
        assert d.block_shapes[0] == (256, 256) and d.profile["tiled"]
        assert d.compression == rasterio.enums.Compression.deflate and d.nodata == 255
        cmap = d.colormap(1)
        assert [cmap[i][:3] for i in range(4)] == [tuple(c) for c in pointwise.bundle.palette]
        assert d.tags()["CLASS_2"] == pointwise.bundle.classes[2]
        got = d.read(1)
    np.testing.assert_array_equal(got, pointwise.predict(np.moveaxis(img, 0, -1)))
    assert not list((tmp_path / "out").glob(".*"))  # no temporary files left


def test_nodata_value_alpha_and_nonfinite_become_255(tmp_path, pointwise):
    img = rgb(40, 50, seed=3)
    img[:, 0:5, 0:5] = 7  # all bands equal the nodata value
    img[0, 10, 10] = 7  # one band only: still data
    write_tif(tmp_path / "nd.tif", img, nodata=7)
    out = tmp_path / "o"
    with rasterio.open(predict_raster(pointwise, tmp_path / "nd.tif", out).output) as d:
        lab = d.read(1)
    assert (lab[:5, :5] == 255).all() and (lab[5:] != 255).all() and lab[10, 10] != 255
    f = rgb(40, 50, seed=4).astype(np.float32)
    f[1, 20:22, 30:33] = np.nan
    write_tif(tmp_path / "nan.tif", f)
    with rasterio.open(predict_raster(pointwise, tmp_path / "nan.tif", out).output) as d:
        lab = d.read(1)
    assert (lab[20:22, 30:33] == 255).all() and (lab == 255).sum() == 6
    a = np.concatenate([rgb(40, 50, seed=5), np.full((1, 40, 50), 255, np.uint8)])
    a[3, 30:, :] = 0  # alpha 0: nodata; the alpha band is a mask, not a model band
    write_tif(tmp_path / "alpha.tif", a, alpha=True)
    with rasterio.open(predict_raster(pointwise, tmp_path / "alpha.tif", out).output) as d:
        lab = d.read(1)
    assert (lab[30:] == 255).all() and (lab[:30] != 255).all()


def test_probs_and_cog(tmp_path, pointwise):
    img = rgb(70, 80, seed=6)
    img[:, :4, :4] = 0
    write_tif(tmp_path / "p.tif", img, nodata=0)
    r = predict_raster(pointwise, tmp_path / "p.tif", tmp_path / "o", PredictOptions(probs=True, cog=True))
    with rasterio.open(r.output) as d:
        assert d.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert d.colormap(1)[1][:3] == tuple(pointwise.bundle.palette[1])
        assert d.tags()["CLASSES"].startswith("[") and d.nodata == 255
        lab = d.read(1)
    with rasterio.open(r.probs) as d:
        assert d.count == 4 and d.descriptions[0] == pointwise.bundle.classes[0]
        probs = d.read()
    s = probs.astype(int).sum(0)
    assert (s[lab != 255] >= 251).all() and (s[lab != 255] <= 259).all()  # p x 255, rounded per class
    assert (probs[:, :4, :4] == 0).all()
    assert (probs.argmax(0) == lab)[lab != 255].mean() > 0.99  # rounding to 1/255 may tie a close pair


def test_folder_glob_png_and_name_collisions(tmp_path, pointwise):
    from PIL import Image

    src = tmp_path / "in"
    src.mkdir()
    write_tif(src / "a.tif", rgb(33, 47))
    Image.fromarray(np.moveaxis(rgb(20, 30, seed=2), 0, -1)).save(src / "b.png")
    Image.fromarray(np.moveaxis(rgb(20, 30, seed=2), 0, -1)).save(src / "a.png")  # same stem as a.tif
    run = predict_files(pointwise, [str(src / "*.tif"), str(src)], tmp_path / "o", PredictOptions(progress=False))
    assert sorted(r.output.name for r in run.results) == ["a.tif", "b.tif"]
    assert [(f.name, "already written") for f, why in run.failed if "already written" in why] == [("a.png",
                                                                                                   "already written")]
    with rasterio.open(tmp_path / "o" / "b.tif") as d:
        assert d.crs is None and d.read(1).shape == (20, 30)
    with pytest.raises(FileNotFoundError, match="INPUT glob .* matches no files"):
        predict_files(pointwise, [str(src / "*.vrt")], tmp_path / "o")
