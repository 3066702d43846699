"""Seam error of tiled inference, measured on an image that fits in one model pass: the
logits of effseg's blended tiles and of a GeoSeg-style non-overlapping tiler against one
whole-image pass, split into the pixels near internal tile borders and the rest.

The blended logits come from effseg's one tile engine (Predictor.predict_logits with the
tile options, the engine under the windowed raster path), on the image read whole; the
windowed pipeline's own class map of the same file is compared with their argmax
(`pipeline_agreement`), so the figures are those of the path that ships."""
from __future__ import annotations

import numpy as np

from ..predict.geotiff import gdal_env
from ..runtime.tiling import tile_starts
from .predict_rows import read_whole, tiler_logits

BORDER_PX = 8


def whole_logits(predictor, path, replicate_grey: bool = False) -> np.ndarray:
    """(K, H, W) logits of one pass over the whole image (predictor built with tile=False)."""
    with gdal_env():
        px, valid, nodata, _ = read_whole(path, predictor.channels, replicate_grey)
    return predictor.predict_logits(px, valid=valid, nodata=nodata)


def blended_logits(predictor, path, tile: int, overlap: int, blend: str = "cosine",
                   replicate_grey: bool = False) -> tuple[np.ndarray, list[int], list[int]]:
    """(K, H, W) logits of effseg's tile engine (the one under the windowed raster path:
    effseg.runtime.tiled) with tile x tile tiles and this overlap, and the tile starts
    along y and x."""
    from ..runtime.tiled import TileOptions, plan_tiles

    with gdal_env():
        px, valid, nodata, _ = read_whole(path, predictor.channels, replicate_grey)
    opts = TileOptions(tile=tile, overlap=overlap, batch=1, blend=blend)
    h, w = px.shape[:2]
    (th, tw), (oy, ox) = plan_tiles(predictor, h, w, opts)
    if (th, tw) != (tile, tile):
        raise ValueError(f"the engine would run {th}x{tw} tiles on this {w}x{h} image, not {tile}x{tile}")
    out = predictor.predict_logits(px, valid=valid, nodata=nodata, options=opts)
    return out, tile_starts(h, th, oy), tile_starts(w, tw, ox)


def tiler_full_logits(predictor, path, tile: int, replicate_grey: bool = False) -> np.ndarray:
    with gdal_env():
        px, _, _, _ = read_whole(path, predictor.channels, replicate_grey)
    h, w = px.shape[:2]
    out = np.empty((predictor.bundle.num_classes, -(-h // tile) * tile, -(-w // tile) * tile), np.float32)
    for y, x, logits in tiler_logits(predictor, px, tile, batch=1):
        out[:, y:y + tile, x:x + tile] = logits
    return out[:, :h, :w]


def near_borders(size: int, borders, px: int = BORDER_PX) -> np.ndarray:
    """(size,) bool: True within px pixels of any border position b (a border between
    pixels b - 1 and b) that lies inside (0, size)."""
    near = np.zeros(size, bool)
    for b in borders:
        if 0 < b < size:
            near[max(0, b - px):b + px] = True
    return near


def blended_borders(starts: list[int], tile: int, size: int) -> list[int]:
    """Where a blended tile's edge lies inside the raster: each later tile's first row and
    each earlier tile's end."""
    return sorted({s for s in starts[1:]} | {s + tile for s in starts[:-1]} - {0, size})


def image_edge(h: int, w: int, px: int = BORDER_PX) -> np.ndarray:
    """(h, w) bool: within px pixels of the image's own edge, where the methods pad
    differently (reflection, zeros) whatever the tiling."""
    rows, cols = np.zeros(h, bool), np.zeros(w, bool)
    rows[:px], rows[h - px:], cols[:px], cols[w - px:] = True, True, True, True
    return rows[:, None] | cols[None, :]


def compare(test: np.ndarray, ref: np.ndarray, near: np.ndarray, edge: np.ndarray | None = None) -> dict:
    """Class disagreement and |logit difference| (max over classes per pixel) of test vs
    ref, over all pixels and per region: near the image's own edge, near internal tile
    borders (away from the image's edge) and elsewhere; pixels where ref is not finite
    (nodata: NaN in predict_logits) are left out."""
    ok = np.isfinite(ref).all(axis=0)
    edge = np.zeros_like(near) if edge is None else edge
    near = near & ~edge
    diff = np.abs(test - ref).max(axis=0)
    differs = test.argmax(axis=0) != ref.argmax(axis=0)
    out = {"pixels": int(ok.sum()), "nodata_pixels": int((~ok).sum()), "near_border_pixels": int((near & ok).sum()),
           "class_differs_fraction": float(differs[ok].mean())}
    for name, sel in (("near_border", near & ok), ("image_edge", edge & ok), ("elsewhere", ~near & ~edge & ok)):
        d = diff[sel]
        out[name] = {"pixels": int(sel.sum()),
                     "class_differs_fraction": float(differs[sel].mean()) if d.size else None,
                     "mean_abs_logit_diff": float(d.mean()) if d.size else None,
                     "max_abs_logit_diff": float(d.max()) if d.size else None}
    return out


def seam_error(predictor, whole_predictor, path, tile: int, overlap: int, pipeline_labels=None,
               replicate_grey: bool = False) -> dict:
    """Blended tiles (tile, overlap) and the non-overlapping tiler (tile) vs one
    whole-image pass; pipeline_labels: the windowed pipeline's class map of the same
    image and tiling, compared with the blended logits' argmax."""
    ref = whole_logits(whole_predictor, path, replicate_grey)
    h, w = ref.shape[1:]
    if max(h, w) <= tile:
        raise ValueError(f"the seam image ({w}x{h}) must be larger than the tile ({tile}) to have tile borders")
    blended, ys, xs = blended_logits(predictor, path, tile, overlap, replicate_grey=replicate_grey)
    near_b = (near_borders(h, blended_borders(ys, tile, h))[:, None]
              | near_borders(w, blended_borders(xs, tile, w))[None, :])
    tiled = tiler_full_logits(predictor, path, tile, replicate_grey)
    near_t = (near_borders(h, range(tile, h, tile))[:, None] | near_borders(w, range(tile, w, tile))[None, :])
    edge = image_edge(h, w)
    ref_labels = np.nan_to_num(ref, nan=-np.inf).argmax(axis=0)[np.isfinite(ref).all(axis=0)]
    out = {"image": {"height": int(h), "width": int(w)}, "tile": tile, "overlap": overlap,
           "border_px": BORDER_PX,
           "whole_class_fractions": np.bincount(ref_labels.ravel(), minlength=ref.shape[0]).tolist(),
           "blended_vs_whole": {**compare(blended, ref, near_b, edge), "tile_starts_y": ys, "tile_starts_x": xs},
           "tiler_vs_whole": compare(tiled, ref, near_t, edge)}
    out["whole_class_fractions"] = [c / ref_labels.size for c in out["whole_class_fractions"]]
    if pipeline_labels is not None:
        out["pipeline_agreement"] = float((np.asarray(pipeline_labels) == blended.argmax(axis=0)).mean())
    return out
