"""Sliding-window inference for images of another size than a static-shape model's input.

Tiles of `tile` pixels step by `tile - overlap`; the image is extended by reflection at the
bottom/right so the last tile is whole (reflection keeps image statistics at the border,
which zero padding would not). Logits are averaged where tiles overlap; a model that
outputs labels cannot be averaged, so each tile keeps only its centre region: the
overlap is split in half between neighbouring tiles.
"""
from __future__ import annotations

import math
from collections.abc import Callable

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
