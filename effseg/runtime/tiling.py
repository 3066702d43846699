"""Where tiles go along one axis, and what lies past an image's bottom/right edge.

Tiles of `tile` pixels step by `tile - overlap`; the image is extended by reflection at
the bottom/right so the last tile is whole (reflection keeps image statistics at the
border, which zero padding would not). effseg.runtime.tiled runs the tiles and
effseg.runtime.blend weighs them.
"""
from __future__ import annotations

import math

import numpy as np


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Tile offsets along one axis: the fewest tiles of `tile` pixels, stepping by
    tile - overlap, that cover `size` pixels."""
    if tile < 1 or not 0 <= overlap < tile:
        raise ValueError(f"tile must be >= 1 and 0 <= overlap < tile, got tile={tile}, overlap={overlap}")
    stride = tile - overlap
    n = max(1, math.ceil((size - overlap) / stride))
    return [i * stride for i in range(n)]


def reflect_index(start: int, stop: int, size: int) -> np.ndarray:
    """Source indices of positions [start, stop) of an axis of `size` extended at its end
    by reflection, repeatedly when needed: what np.pad(mode='reflect') puts there (a
    1-pixel axis repeats its pixel)."""
    idx = np.arange(start, stop)
    if size == 1:
        return np.zeros_like(idx)
    period = 2 * (size - 1)
    m = idx % period
    return np.where(m < size, m, period - m)
