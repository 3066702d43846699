"""Polygons of connected class regions written as an OGC GeoPackage (1.3) with the
standard library's sqlite3: no GDAL vector bindings (pyogrio, fiona) needed.

One feature table named after the output file, columns fid, geom (GeoPackage binary
geometry: a small header with the SRS id and the envelope, then little-endian WKB
POLYGON), class_id, class_name and area (CRS units squared). The polygons are those of
the GeoJSON writer (vector.polygons), so both formats hold the same coordinates.
"""
from __future__ import annotations

import sqlite3
import struct
from pathlib import Path

import numpy as np

from .geotiff import rasterio_or_raise
from .vector import polygons

APPLICATION_ID = 0x47504B47  # 'GPKG'
USER_VERSION = 10300  # GeoPackage 1.3.0
# srs_id of a CRS without an EPSG code: the range readers leave to files' own definitions.
CUSTOM_SRS_ID = 100000
WKB_POLYGON = 3
# Flags: bit 0 little-endian, bits 1-3 envelope kind 1 ([minx, maxx, miny, maxy]).
_FLAGS = 0b0000_0011

_SCHEMA = """
CREATE TABLE gpkg_spatial_ref_sys (
  srs_name TEXT NOT NULL, srs_id INTEGER PRIMARY KEY, organization TEXT NOT NULL,
  organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL, description TEXT);
CREATE TABLE gpkg_contents (
  table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL, identifier TEXT UNIQUE,
  description TEXT DEFAULT '', last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER,
  CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id));
CREATE TABLE gpkg_geometry_columns (
  table_name TEXT NOT NULL, column_name TEXT NOT NULL, geometry_type_name TEXT NOT NULL,
  srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL,
  CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name),
  CONSTRAINT uk_gc_table_name UNIQUE (table_name),
  CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name),
  CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id));
"""


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def geometry_blob(rings: list[np.ndarray], srs_id: int) -> bytes:
    """GeoPackage binary of one polygon: 'GP', version 0, flags, srs_id, envelope, WKB."""
    pts = np.concatenate(rings)
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    parts = [b"GP", struct.pack("<BBi4d", 0, _FLAGS, srs_id, x0, x1, y0, y1),
             struct.pack("<BII", 1, WKB_POLYGON, len(rings))]
    for r in rings:
        parts += [struct.pack("<I", len(r)), np.ascontiguousarray(r, "<f8").tobytes()]
    return b"".join(parts)


def srs_rows(crs) -> tuple[int, list[tuple]]:
    """(srs_id of the features, the gpkg_spatial_ref_sys rows): the three every
    GeoPackage holds (WGS 84, undefined Cartesian -1, undefined geographic 0) and the
    raster's CRS; a raster without one gets -1 (its coordinates are pixels)."""
    from rasterio.crs import CRS

    rows = [("WGS 84 geodetic", 4326, "EPSG", 4326, CRS.from_epsg(4326).to_wkt(), "longitude/latitude WGS 84"),
            ("Undefined cartesian SRS", -1, "NONE", -1, "undefined", "undefined cartesian coordinate reference system"),
            ("Undefined geographic SRS", 0, "NONE", 0, "undefined", "undefined geographic coordinate reference system")]
    if crs is None:
        return -1, rows
    epsg = crs.to_epsg()
    if epsg == 4326:
        return 4326, rows
    wkt = crs.to_wkt()
    name = wkt.split('"')[1] if '"' in wkt else "raster CRS"
    if epsg:
        rows.append((name, epsg, "EPSG", epsg, wkt, None))
        return epsg, rows
    rows.append((name, CUSTOM_SRS_ID, "NONE", CUSTOM_SRS_ID, wkt, "the class map's CRS (no EPSG code)"))
    return CUSTOM_SRS_ID, rows


def write_gpkg(class_map: Path, out: Path, *, classes: list[str], nodata: int, simplify: float = 1.0) -> Path:
    """class_map (a written class-map GeoTIFF) -> out (.gpkg): one POLYGON feature per
    connected region, written under a temporary name and renamed when complete."""
    rasterio = rasterio_or_raise()
    out = Path(out)
    if out.suffix.lower() != ".gpkg":
        raise ValueError(f"GeoPackage output must end in .gpkg, got {out.name!r}")
    with rasterio.open(class_map) as src:
        crs = src.crs
    srs_id, srs = srs_rows(crs)
    table = out.stem
    tmp = out.with_name(f".{out.name}.part")
    tmp.unlink(missing_ok=True)
    con = sqlite3.connect(tmp)
    try:
        con.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        con.execute(f"PRAGMA user_version = {USER_VERSION}")
        con.executescript(_SCHEMA)
        with con:
            con.executemany("INSERT INTO gpkg_spatial_ref_sys VALUES (?, ?, ?, ?, ?, ?)", srs)
            con.execute(f"CREATE TABLE {quote(table)} (fid INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, "
                        "geom POLYGON, class_id INTEGER, class_name TEXT, area DOUBLE)")
            lo, hi = np.full(2, np.inf), np.full(2, -np.inf)
            insert = f"INSERT INTO {quote(table)} (geom, class_id, class_name, area) VALUES (?, ?, ?, ?)"
            for value, rings, area in polygons(class_map, nodata=nodata, simplify=simplify):
                lo, hi = np.minimum(lo, rings[0].min(axis=0)), np.maximum(hi, rings[0].max(axis=0))
                name = classes[value] if value < len(classes) else str(value)
                con.execute(insert, (geometry_blob(rings, srs_id), value, name, area))
            bounds = (None,) * 4 if np.isinf(lo).any() else (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))
            con.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier, description, min_x, min_y, "
                        "max_x, max_y, srs_id) VALUES (?, 'features', ?, ?, ?, ?, ?, ?, ?)",
                        (table, table, "class regions of " + Path(class_map).name, *bounds, srs_id))
            con.execute("INSERT INTO gpkg_geometry_columns VALUES (?, 'geom', 'POLYGON', ?, 0, 0)", (table, srs_id))
    except BaseException:
        con.close()
        tmp.unlink(missing_ok=True)
        raise
    con.close()
    tmp.replace(out)
    return out
