"""Class maps -> polygons of connected regions (rasterio.features.shapes, 4-connected),
in the raster's CRS, written as GeoJSON with json alone, one feature at a time, or as a
GeoPackage (gpkg.py) from the same polygons.

A map up to WHOLE_MAP_PIXELS is polygonised at once, so a region is one polygon. A larger
one is polygonised one band of WINDOW_ROWS rows at a time (memory stays bounded): a
region crossing a band border is then split there into polygons that share that edge.
Rings are simplified with Douglas-Peucker at `simplify` pixels (0: the exact pixel
outlines); each ring on its own, so neighbouring polygons may no longer share edges
exactly: simplify 0 when they must.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .geotiff import rasterio_or_raise

WHOLE_MAP_PIXELS = 16_000_000
WINDOW_ROWS = 1024


def simplify_ring(ring: np.ndarray, tol: float) -> np.ndarray:
    """Douglas-Peucker on a closed ring (first point == last); keeps it closed and
    returns the ring unchanged when simplifying would leave fewer than 3 corners."""
    if tol <= 0 or len(ring) <= 4:
        return ring
    pts = ring[:-1]
    # Split at the point farthest from the first, so the two halves are open polylines.
    far = int(np.argmax(((pts - pts[0]) ** 2).sum(1)))
    keep = np.zeros(len(pts) + 1, bool)
    keep[[0, far, len(pts)]] = True
    closed = np.vstack([pts, pts[:1]])
    stack = [(0, far), (far, len(pts))]
    while stack:
        a, b = stack.pop()
        if b - a < 2:
            continue
        p, q = closed[a], closed[b]
        seg = q - p
        n = np.hypot(*seg)
        mid = closed[a + 1:b]
        d = (np.abs(seg[0] * (mid[:, 1] - p[1]) - seg[1] * (mid[:, 0] - p[0])) / n if n > 0
             else np.hypot(*(mid - p).T))
        k = int(np.argmax(d))
        if d[k] > tol:
            keep[a + 1 + k] = True
            stack += [(a, a + 1 + k), (a + 1 + k, b)]
    out = closed[keep]
    return out if len(out) >= 4 else ring


def ring_area(ring: np.ndarray) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]))


def _crs_member(crs) -> dict | None:
    if crs is None:
        return None
    epsg = crs.to_epsg()
    name = f"urn:ogc:def:crs:EPSG::{epsg}" if epsg else crs.to_wkt()
    return {"type": "name", "properties": {"name": name}}


def polygons(path, *, nodata: int, simplify: float = 1.0):
    """Yields (class id, [rings in CRS coordinates], area in CRS units squared)."""
    rasterio = rasterio_or_raise()
    from rasterio.features import shapes
    from rasterio.windows import Window

    with rasterio.open(path) as src:
        h, w = src.height, src.width
        rows = h if h * w <= WHOLE_MAP_PIXELS else WINDOW_ROWS
        # The tolerance is in pixels; rings are simplified in pixel units, then mapped.
        for r0 in range(0, h, rows):
            win = Window(0, r0, w, min(rows, h - r0))
            band = src.read(1, window=win)
            for geom, value in shapes(band, mask=band != nodata, connectivity=4):
                rings = []
                for ring in geom["coordinates"]:
                    px = simplify_ring(np.asarray(ring, np.float64), simplify)
                    cols, rws = px[:, 0], px[:, 1] + r0
                    t = src.transform
                    xs, ys = t.a * cols + t.b * rws + t.c, t.d * cols + t.e * rws + t.f
                    rings.append(np.column_stack([xs, ys]))
                area = abs(ring_area(rings[0])) - sum(abs(ring_area(r)) for r in rings[1:])
                yield int(value), rings, area
        return


VECTOR_FORMATS = ("geojson", "gpkg")


def write_vector(class_map: Path, out: Path, *, classes: list[str], nodata: int, simplify: float = 1.0) -> Path:
    """class_map (a written class-map GeoTIFF) -> out, .geojson or .gpkg by its suffix."""
    out = Path(out)
    kind = out.suffix.lower().lstrip(".")
    if kind not in VECTOR_FORMATS:
        raise ValueError(f"--vector {kind}: the vector formats are {', '.join(VECTOR_FORMATS)} (the output file's "
                         f"suffix), got {out.name!r}")
    if kind == "gpkg":
        from .gpkg import write_gpkg

        return write_gpkg(class_map, out, classes=classes, nodata=nodata, simplify=simplify)
    return write_geojson(class_map, out, classes=classes, nodata=nodata, simplify=simplify)


def write_geojson(class_map: Path, out: Path, *, classes: list[str], nodata: int, simplify: float = 1.0) -> Path:
    """class_map (a written class-map GeoTIFF) -> out (.geojson): one Polygon feature per
    connected region, properties class (id), name and area (CRS units squared)."""
    rasterio = rasterio_or_raise()
    out = Path(out)
    with rasterio.open(class_map) as src:
        crs = src.crs
    tmp = out.with_name(f".{out.name}.part")
    with open(tmp, "w", encoding="utf-8") as f:
        head = {"type": "FeatureCollection"}
        member = _crs_member(crs)
        if member:
            head["crs"] = member
        f.write(json.dumps(head)[:-1] + ', "features": [\n')
        first = True
        for value, rings, area in polygons(class_map, nodata=nodata, simplify=simplify):
            feat = {"type": "Feature",
                    "properties": {"class": value, "name": classes[value] if value < len(classes) else str(value),
                                   "area": area},
                    "geometry": {"type": "Polygon", "coordinates": [r.tolist() for r in rings]}}
            f.write(("" if first else ",\n") + json.dumps(feat))
            first = False
        f.write("\n]}\n")
    tmp.replace(out)
    return out
