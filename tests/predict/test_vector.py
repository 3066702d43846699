"""--vector: one polygon per connected class region, areas in CRS units, the raster's CRS;
band-by-band polygonising of large maps keeps each class's total area."""
import json

import numpy as np
import pytest
from bundle_cases import make_bundle
from raster_cases import rgb, write_tif

from effseg.predict import PredictOptions, predict_raster, vector
from effseg.runtime import Predictor


def _map(tmp_path):
    m = np.zeros((1, 60, 80), np.uint8)
    m[0, 10:20, 10:30] = 1  # 200 px
    m[0, 30:50, 40:45] = 1  # 100 px, a second region of class 1
    m[0, 40:60, 60:80] = 2  # 400 px
    m[0, 0:2, 0:3] = 255  # nodata: no polygon
    return write_tif(tmp_path / "map.tif", m, nodata=255)


def _features(path):
    fc = json.loads(path.read_text())
    return fc, [(f["properties"]["class"], f["properties"]["area"]) for f in fc["features"]]


def test_polygons_counts_areas_and_crs(tmp_path):
    out = vector.write_vector(_map(tmp_path), tmp_path / "map.geojson", classes=["bg", "house", "road"], nodata=255)
    fc, feats = _features(out)
    assert fc["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::32616"
    px = 0.5 * 0.5  # pixel area in CRS units (0.5 m pixels)
    assert sorted(a / px for c, a in feats if c == 1) == [100, 200]
    assert [a / px for c, a in feats if c == 2] == [400]
    assert sum(a for c, a in feats if c == 0) / px == 60 * 80 - 700 - 6  # one polygon with holes
    assert len(feats) == 4 and fc["features"][0]["properties"]["name"] in ("bg", "house", "road")
    x, y = np.asarray(fc["features"][0]["geometry"]["coordinates"][0]).T
    assert x.min() >= 500000 and y.max() <= 4000000  # map coordinates, not pixels


def test_large_maps_go_band_by_band(tmp_path, monkeypatch):
    path = _map(tmp_path)
    monkeypatch.setattr(vector, "WHOLE_MAP_PIXELS", 100)
    monkeypatch.setattr(vector, "WINDOW_ROWS", 16)
    _, feats = _features(vector.write_vector(path, tmp_path / "w.geojson", classes=["a", "b", "c"], nodata=255))
    assert len(feats) > 4  # regions split at band borders
    for c, want in ((1, 300), (2, 400)):
        assert sum(a for k, a in feats if k == c) / 0.25 == pytest.approx(want)


def test_simplify_straightens_staircases():
    stair = [(0, 0)] + [(i + s, i + 1) for i in range(10) for s in (0, 1)] + [(10, 0), (0, 0)]
    ring = np.asarray(stair, float)
    assert len(vector.simplify_ring(ring, 1.0)) < len(ring) // 2
    np.testing.assert_array_equal(vector.simplify_ring(ring, 0), ring)


def test_predict_with_vector(tmp_path):
    p = Predictor(make_bundle(tmp_path, kernel=1, dynamic_hw=True, tile_size=32, tile_overlap=8, height=32,
                              width=32))
    write_tif(tmp_path / "a.tif", rgb(40, 50))
    r = predict_raster(p, tmp_path / "a.tif", tmp_path / "o", PredictOptions(vector="geojson", simplify=0))
    _, feats = _features(r.vector)
    assert r.vector.name == "a.geojson" and sum(a for _, a in feats) / 0.25 == pytest.approx(40 * 50)
    with pytest.raises(ValueError, match="--vector must be geojson or gpkg, got 'shp'"):
        predict_raster(p, tmp_path / "a.tif", tmp_path / "o", PredictOptions(vector="shp"))
    with pytest.raises(ValueError, match="vector formats are geojson, gpkg .* got 'map.shp'"):
        vector.write_vector(tmp_path / "o" / "a.tif", tmp_path / "map.shp", classes=["a"], nodata=255)
