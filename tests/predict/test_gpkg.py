"""--vector gpkg: a GeoPackage written with sqlite3, read back here with sqlite3 and a WKB
decoder of the test's own (and with pyogrio when it is installed): the same features,
classes and coordinates as the GeoJSON output, and the raster's CRS."""
import json
import sqlite3
import struct

import numpy as np
import pytest
from bundle_cases import make_bundle
from raster_cases import rgb, write_tif

from effseg.predict import PredictOptions, predict_raster, vector

CLASSES = ["bg", "house", "road"]


def _map(tmp_path, crs="EPSG:32616"):
    m = np.zeros((1, 60, 80), np.uint8)
    m[0, 10:20, 10:30] = 1
    m[0, 30:50, 40:45] = 1
    m[0, 40:60, 60:80] = 2
    m[0, 13:17, 15:19] = 2  # a region inside another class's region: a polygon with a hole
    m[0, 0:2, 0:3] = 255
    return write_tif(tmp_path / "map.tif", m, nodata=255, crs=crs)


def decode_geom(blob: bytes):
    """GeoPackage binary -> (srs_id, envelope, rings): the test's own decoder."""
    assert blob[:2] == b"GP" and blob[2] == 0
    flags = blob[3]
    assert flags & 1 == 1, "little-endian header"
    env_kind = (flags >> 1) & 7
    assert env_kind == 1 and not flags & 0b10000  # [minx, maxx, miny, maxy], not empty
    srs_id, = struct.unpack_from("<i", blob, 4)
    env = struct.unpack_from("<4d", blob, 8)
    off = 8 + 32
    order = "<" if blob[off] == 1 else ">"
    kind, n = struct.unpack_from(order + "II", blob, off + 1)
    assert kind == 3  # WKB Polygon
    off += 9
    rings = []
    for _ in range(n):
        m, = struct.unpack_from(order + "I", blob, off)
        rings.append(np.frombuffer(blob, order + "f8", 2 * m, off + 4).reshape(m, 2))
        off += 4 + 16 * m
    assert off == len(blob)
    return srs_id, env, rings


def _read(path):
    con = sqlite3.connect(path)
    try:
        app, = con.execute("PRAGMA application_id").fetchone()
        ver, = con.execute("PRAGMA user_version").fetchone()
        srs = {r[0]: r[1:] for r in con.execute(
            "SELECT srs_id, organization, organization_coordsys_id, definition FROM gpkg_spatial_ref_sys")}
        contents = con.execute("SELECT table_name, data_type, srs_id, min_x, min_y, max_x, max_y "
                               "FROM gpkg_contents").fetchall()
        cols = con.execute("SELECT table_name, column_name, geometry_type_name, srs_id, z, m "
                           "FROM gpkg_geometry_columns").fetchall()
        feats = con.execute(f'SELECT fid, geom, class_id, class_name, area FROM "{contents[0][0]}" ORDER BY fid'
                            ).fetchall()
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        con.close()
    return app, ver, srs, contents, cols, feats


def test_gpkg_matches_geojson(tmp_path):
    src = _map(tmp_path)
    gj = json.loads(vector.write_vector(src, tmp_path / "map.geojson", classes=CLASSES, nodata=255).read_text())
    out = vector.write_vector(src, tmp_path / "map.gpkg", classes=CLASSES, nodata=255)
    assert out.name == "map.gpkg" and not list(tmp_path.glob(".*part"))
    assert out.read_bytes()[68:72] == b"GPKG"  # the application id field of the SQLite header
    app, ver, srs, contents, cols, feats = _read(out)
    assert app == 0x47504B47 and ver in (10200, 10201, 10300)
    assert {-1, 0, 4326, 32616} <= set(srs)
    assert srs[32616][:2] == ("EPSG", 32616) and "UTM zone 16N" in srs[32616][2]
    assert contents[0][:3] == ("map", "features", 32616)
    assert cols == [("map", "geom", "POLYGON", 32616, 0, 0)]
    assert len(feats) == len(gj["features"]) == 5
    assert [f[0] for f in feats] == [1, 2, 3, 4, 5]
    lo, hi = np.full(2, np.inf), np.full(2, -np.inf)
    holes = 0
    for (fid, blob, cid, name, area), g in zip(feats, gj["features"]):
        srs_id, env, rings = decode_geom(blob)
        assert srs_id == 32616
        assert cid == g["properties"]["class"] and name == CLASSES[cid] == g["properties"]["name"]
        assert area == g["properties"]["area"]
        want = g["geometry"]["coordinates"]
        assert len(rings) == len(want)
        holes += len(rings) - 1
        for r, w in zip(rings, want):
            np.testing.assert_array_equal(r, np.asarray(w))
        pts = np.concatenate(rings)
        assert env == (pts[:, 0].min(), pts[:, 0].max(), pts[:, 1].min(), pts[:, 1].max())
        lo, hi = np.minimum(lo, pts.min(0)), np.maximum(hi, pts.max(0))
    assert holes >= 2  # class 0 around the others, class 1 around the class-2 island
    assert contents[0][3:] == (lo[0], lo[1], hi[0], hi[1])
    assert sorted(round(f[4] / 0.25) for f in feats if f[2] == 1) == [100, 184]  # 200 minus the 16-px island


def test_gpkg_crs_without_epsg_and_without_crs(tmp_path):
    wkt = ('PROJCS["custom TM",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],'
           'PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],PROJECTION["Transverse_Mercator"],'
           'PARAMETER["latitude_of_origin",0],PARAMETER["central_meridian",-87.3],PARAMETER["scale_factor",0.9996],'
           'PARAMETER["false_easting",500000],PARAMETER["false_northing",0],UNIT["metre",1]]')
    from rasterio.crs import CRS

    assert CRS.from_wkt(wkt).to_epsg() is None
    out = vector.write_vector(_map(tmp_path, crs=CRS.from_wkt(wkt)), tmp_path / "c.gpkg", classes=CLASSES,
                              nodata=255)
    _, _, srs, contents, _, feats = _read(out)
    assert contents[0][2] == 100000 and srs[100000][:2] == ("NONE", 100000)
    assert CRS.from_wkt(srs[100000][2]) == CRS.from_wkt(wkt)
    assert decode_geom(feats[0][1])[0] == 100000

    (tmp_path / "n").mkdir()
    out = vector.write_vector(_map(tmp_path / "n", crs=None), tmp_path / "n.gpkg", classes=CLASSES, nodata=255)
    _, _, srs, contents, _, feats = _read(out)
    assert contents[0][2] == -1 and set(srs) == {-1, 0, 4326}


def test_gpkg_read_by_gdal(tmp_path):
    pyogrio = pytest.importorskip("pyogrio", reason="pyogrio (GDAL's reader) is not installed")
    src = _map(tmp_path)
    gj = json.loads(vector.write_vector(src, tmp_path / "map.geojson", classes=CLASSES, nodata=255).read_text())
    out = vector.write_vector(src, tmp_path / "map.gpkg", classes=CLASSES, nodata=255)
    meta, fids, geoms, fields = pyogrio.raw.read(out, return_fids=True)
    assert meta["crs"] == "EPSG:32616" and meta["geometry_type"] == "Polygon"
    assert list(meta["fields"]) == ["class_id", "class_name", "area"]
    assert list(fields[0]) == [f["properties"]["class"] for f in gj["features"]]
    for wkb, g in zip(geoms, gj["features"]):
        _, _, rings = decode_geom(b"GP\x00\x03" + b"\x00" * 36 + bytes(wkb))
        for r, w in zip(rings, g["geometry"]["coordinates"]):
            np.testing.assert_array_equal(r, np.asarray(w))


def test_predict_writes_gpkg(tmp_path):
    from effseg.runtime import Predictor

    p = Predictor(make_bundle(tmp_path, kernel=1, dynamic_hw=True, tile_size=32, tile_overlap=8, height=32,
                              width=32))
    write_tif(tmp_path / "a.tif", rgb(40, 50))
    r = predict_raster(p, tmp_path / "a.tif", tmp_path / "o", PredictOptions(vector="gpkg", simplify=0))
    assert r.vector.name == "a.gpkg"
    _, _, _, contents, _, feats = _read(r.vector)
    assert contents[0][0] == "a" and sum(f[4] for f in feats) / 0.25 == pytest.approx(40 * 50)
