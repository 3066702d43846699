"""Sliding-window inference for images of another size than a static-shape model's input.

Tiles of `tile` pixels step by `tile - overlap`; the image is extended by reflection at the
bottom/right so the last tile is whole (reflection keeps image statistics at the border,
which zero padding would not). Logits are averaged where tiles overlap; a model that
outputs labels cannot be averaged, so each tile keeps only its centre region: the
overlap is split in half between neighbouring tiles.

The predictor streams (stream_tiled_logits / stream_tiled_labels): it builds one tile
row of input at a time and keeps one tile row of logits, finishing the rows no later tile
touches, so memory grows with the image width, not its area. The summation order is that
of tiled_logits, so the streamed logits are bit-for-bit the same as the whole-image ones.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Tile offsets along one axis: the fewest tiles of `tile` pixels, stepping by
    tile - overlap, that cover `size` pixels."""
    if tile < 1 or not 0 <= overlap < tile:
        raise ValueError(f"tile must be >= 1 and 0 <= overlap < tile, got tile={tile}, overlap={overlap}")
    stride = tile - overlap
    n = max(1, math.ceil((size - overlap) / stride))
    return [i * stride for i in range(n)]


def owned_ranges(starts: list[int], overlap: int, size: int) -> list[tuple[int, int]]:
    """For each tile, the [lo, hi) part of the axis it alone decides: neighbours split
    their overlap at its middle, the first and last tiles reach the image ends. The
    ranges partition [0, size)."""
    half = overlap // 2
    out = []
    for i, s in enumerate(starts):
        lo = 0 if i == 0 else s + half
        hi = size if i == len(starts) - 1 else starts[i + 1] + half
        out.append((min(lo, size), min(hi, size)))
    return out


def pad_reflect(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """(C, H, W) -> (C, height, width), extending bottom/right by reflection (numpy
    reflects repeatedly when the pad is larger than the image; a 1-pixel axis repeats)."""
    ph, pw = height - x.shape[1], width - x.shape[2]
    if ph < 0 or pw < 0:
        raise ValueError(f"cannot pad {x.shape[1:]} down to {(height, width)}")
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, ph), (0, pw)), mode="reflect")


def tiled_logits(x: np.ndarray, run: Callable[[np.ndarray], np.ndarray], tile_hw: tuple[int, int],
                 overlap: int) -> np.ndarray:
    """(C, H, W) input -> (K, H, W) float32 logits, averaged over overlapping tiles.

    run maps a (C, th, tw) tile to (K, th, tw) logits; tile_hw = (th, tw) is the size the
    model takes; overlap is clipped below each tile side.
    """
    th, tw = tile_hw
    _, h, w = x.shape
    ys, xs = tile_starts(h, th, min(overlap, th - 1)), tile_starts(w, tw, min(overlap, tw - 1))
    xp = pad_reflect(x, ys[-1] + th, xs[-1] + tw)
    acc = None
    count = np.zeros((xp.shape[1], xp.shape[2]), np.float32)
    for y in ys:
        for x0 in xs:
            out = np.asarray(run(xp[:, y:y + th, x0:x0 + tw]), dtype=np.float32)
            if acc is None:
                acc = np.zeros((out.shape[0],) + count.shape, np.float32)
            acc[:, y:y + th, x0:x0 + tw] += out
            count[y:y + th, x0:x0 + tw] += 1.0
    return acc[:, :h, :w] / count[None, :h, :w]


def tiled_labels(x: np.ndarray, run: Callable[[np.ndarray], np.ndarray], tile_hw: tuple[int, int],
                 overlap: int) -> np.ndarray:
    """(C, H, W) input -> (H, W) labels, each pixel from the tile whose centre region
    holds it. run maps a (C, th, tw) tile to (th, tw) labels."""
    th, tw = tile_hw
    _, h, w = x.shape
    oy, ox = min(overlap, th - 1), min(overlap, tw - 1)
    ys, xs = tile_starts(h, th, oy), tile_starts(w, tw, ox)
    xp = pad_reflect(x, ys[-1] + th, xs[-1] + tw)
    result = None
    for y, (ylo, yhi) in zip(ys, owned_ranges(ys, oy, h)):
        for x0, (xlo, xhi) in zip(xs, owned_ranges(xs, ox, w)):
            if ylo >= yhi or xlo >= xhi:
                continue
            out = np.asarray(run(xp[:, y:y + th, x0:x0 + tw]))
            if result is None:
                result = np.zeros((h, w), out.dtype)
            result[ylo:yhi, xlo:xhi] = out[ylo - y:yhi - y, xlo - x0:xhi - x0]
    return result


def reflect_index(start: int, stop: int, size: int) -> np.ndarray:
    """Source indices of positions [start, stop) of an axis of `size` extended at its end
    by reflection, repeatedly when needed: what pad_reflect (np.pad mode='reflect') puts there."""
    idx = np.arange(start, stop)
    if size == 1:
        return np.zeros_like(idx)
    period = 2 * (size - 1)
    m = idx % period
    return np.where(m < size, m, period - m)


def _coverage(starts: list[int], tile: int, length: int) -> np.ndarray:
    n = np.zeros(length, np.int64)
    for s in starts:
        n[s:s + tile] += 1
    return n


def _strip_cols(strip: np.ndarray, width: int, padded: int) -> np.ndarray:
    return strip if padded == width else strip[:, :, reflect_index(0, padded, width)]


def stream_tiled_logits(h: int, w: int, rows: Callable[[np.ndarray], np.ndarray],
                        run: Callable[[np.ndarray], np.ndarray], tile_hw: tuple[int, int],
                        overlap: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """tiled_logits for an (H, W) image seen one tile row at a time: yields (r0, r1,
    (K, r1 - r0, W) logits) for consecutive row bands that cover [0, H).

    rows maps an array of image row indices to the (C, len, W) model input of those rows.
    """
    th, tw = tile_hw
    oy, ox = min(overlap, th - 1), min(overlap, tw - 1)
    ys, xs = tile_starts(h, th, oy), tile_starts(w, tw, ox)
    wp = xs[-1] + tw
    ny, nx = _coverage(ys, th, ys[-1] + th), _coverage(xs, tw, wp)
    acc = None  # rows [y, y + th) of the padded image's logit sums
    for i, y in enumerate(ys):
        xp = _strip_cols(rows(reflect_index(y, y + th, h)), w, wp)
        for x0 in xs:
            out = np.asarray(run(xp[:, :, x0:x0 + tw]), dtype=np.float32)
            if acc is None:
                acc = np.zeros((out.shape[0], th, wp), np.float32)
            acc[:, :, x0:x0 + tw] += out
        # Rows above the next tile row get nothing more: they are final.
        r1 = min(ys[i + 1], h) if i + 1 < len(ys) else h
        count = (ny[y:r1, None] * nx[None, :w]).astype(np.float32)
        yield y, r1, acc[:, :r1 - y, :w] / count[None]
        if i + 1 < len(ys):
            step = ys[i + 1] - y
            acc[:, :th - step] = acc[:, step:].copy()
            acc[:, th - step:] = 0.0


def stream_tiled_labels(h: int, w: int, rows: Callable[[np.ndarray], np.ndarray],
                        run: Callable[[np.ndarray], np.ndarray], tile_hw: tuple[int, int],
                        overlap: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """tiled_labels one tile row at a time: yields (r0, r1, (r1 - r0, W) labels)."""
    th, tw = tile_hw
    oy, ox = min(overlap, th - 1), min(overlap, tw - 1)
    ys, xs = tile_starts(h, th, oy), tile_starts(w, tw, ox)
    wp = xs[-1] + tw
    for y, (ylo, yhi) in zip(ys, owned_ranges(ys, oy, h)):
        if ylo >= yhi:
            continue
        xp = _strip_cols(rows(reflect_index(y, y + th, h)), w, wp)
        band = None
        for x0, (xlo, xhi) in zip(xs, owned_ranges(xs, ox, w)):
            if xlo >= xhi:
                continue
            out = np.asarray(run(xp[:, :, x0:x0 + tw]))
            if band is None:
                band = np.zeros((yhi - ylo, w), out.dtype)
            band[:, xlo:xhi] = out[ylo - y:yhi - y, xlo - x0:xhi - x0]
        yield ylo, yhi, band
