"""Blending overlapping tiles of logits into one raster, one row of tiles at a time.

Each tile's logits are weighted by w(y, x) = r(y) * r(x): r ramps from 0 to 1 over the
overlap shared with a neighbouring tile and is 1 elsewhere, including the sides that lie
on the raster's own edges (nothing there to blend with, and a ramp would only down-weight
the one answer there is). The output is sum(w * logits) / sum(w). With the grid of
tiling.tile_starts (consecutive tiles overlap by exactly `overlap`) the falling ramp of
one tile and the rising ramp of the next add up to 1, so sum(w) is 1 everywhere; it is
still divided by, so that any ramp or grid stays a weighted mean.

A plain average switches weight abruptly at every tile border, where a convolutional
net's answers are worst (zero padding, less context): that is the seam. The ramps give a
tile's edge pixels almost no weight wherever another tile saw them from its interior.
"""
from __future__ import annotations

import numpy as np

from .tiling import tile_starts

RAMPS = ("linear", "cosine")


def ramp(overlap: int, kind: str = "cosine") -> np.ndarray:
    """The rising ramp over `overlap` pixels, strictly between 0 and 1 (sampled at pixel
    centres, so every pixel keeps some weight); 1 - ramp is the falling one."""
    if kind not in RAMPS:
        raise ValueError(f"blend must be one of {', '.join(RAMPS)}, got {kind!r}")
    t = (np.arange(overlap, dtype=np.float64) + 0.5) / max(overlap, 1)
    r = t if kind == "linear" else np.sin(0.5 * np.pi * t) ** 2
    return r.astype(np.float32)


def axis_weights(size: int, tile: int, overlap: int, kind: str = "cosine") -> tuple[list[int], list[np.ndarray]]:
    """Tile starts along one axis and each tile's 1-D weights (length `tile`). The first
    tile has no rising ramp, the last no falling one: those sides are the raster's edges."""
    if not 0 <= overlap <= tile // 2:
        raise ValueError(f"overlap must be between 0 and half the tile ({tile} // 2 = {tile // 2}), got {overlap}")
    starts = tile_starts(size, tile, overlap)
    up = ramp(overlap, kind)
    out = []
    for i in range(len(starts)):
        r = np.ones(tile, np.float32)
        if overlap and i > 0:
            r[:overlap] = up
        if overlap and i < len(starts) - 1:
            r[tile - overlap:] = 1.0 - up
        out.append(r)
    return starts, out


def weight_sum(size: int, starts: list[int], weights: list[np.ndarray]) -> np.ndarray:
    """sum(w) along one axis over [0, size): the 2-D sum is the outer product of two."""
    tile = len(weights[0])
    total = np.zeros(starts[-1] + tile, np.float64)
    for s, r in zip(starts, weights):
        total[s:s + tile] += r
    return total[:size].astype(np.float32)


class RowBlender:
    """Accumulates weighted tiles of one tile row at a time (row-major order) and hands
    back the rows that no later tile touches: memory is one tile row of logits,
    (K, tile_h, padded width), whatever the raster's height.

    add(i, j, logits, nodata) for tile (row i, column j); after the last tile of row i,
    finish_row(i) returns (r0, r1, (K, r1 - r0, W) blended logits, (r1 - r0, W) nodata).
    """

    def __init__(self, h: int, w: int, tile_hw: tuple[int, int], overlap, classes: int,
                 kind: str = "cosine"):
        """overlap: one for both axes, or (rows, columns)."""
        th, tw = tile_hw
        oy, ox = (overlap, overlap) if np.ndim(overlap) == 0 else overlap
        self.h, self.w, self.th, self.tw = h, w, th, tw
        self.ys, self.ry = axis_weights(h, th, oy, kind)
        self.xs, self.rx = axis_weights(w, tw, ox, kind)
        self.sy, self.sx = weight_sum(h, self.ys, self.ry), weight_sum(w, self.xs, self.rx)
        wp = self.xs[-1] + tw
        self.acc = np.zeros((classes, th, wp), np.float32)
        self.nodata = np.zeros((th, wp), bool)

    @property
    def tiles(self) -> list[tuple[int, int]]:
        return [(i, j) for i in range(len(self.ys)) for j in range(len(self.xs))]

    def add(self, i: int, j: int, logits: np.ndarray, nodata: np.ndarray | None = None) -> None:
        x0 = self.xs[j]
        w2 = self.ry[i][:, None] * self.rx[j][None, :]
        self.acc[:, :, x0:x0 + self.tw] += logits * w2
        if nodata is not None:
            self.nodata[:, x0:x0 + self.tw] |= nodata

    def row_span(self, i: int) -> tuple[int, int]:
        """The raster rows [r0, r1) that tile row i completes: those above the next tile row."""
        y = self.ys[i]
        return y, (min(self.ys[i + 1], self.h) if i + 1 < len(self.ys) else self.h)

    def blended(self, i: int, c0: int = 0, c1: int | None = None) -> np.ndarray:
        """(K, r1 - r0, c1 - c0) blended logits of the rows tile row i completes, columns
        [c0, c1): callers take column chunks, so no full-width float copy is made."""
        r0, r1 = self.row_span(i)
        c1 = self.w if c1 is None else c1
        return self.acc[:, :r1 - r0, c0:c1] / (self.sy[r0:r1, None] * self.sx[None, c0:c1])

    def nodata_rows(self, i: int) -> np.ndarray:
        r0, r1 = self.row_span(i)
        return self.nodata[:r1 - r0, :self.w]

    def advance(self, i: int) -> None:
        """Drop the rows tile row i completed; the overlap moves up for row i + 1."""
        if i + 1 >= len(self.ys):
            return
        step = self.ys[i + 1] - self.ys[i]
        keep = self.th - step
        # overlap <= tile / 2, so keep <= step: source and destination rows never overlap
        # and numpy copies in place, without a temporary of the strip.
        self.acc[:, :keep] = self.acc[:, step:]
        self.acc[:, keep:] = 0.0
        self.nodata[:keep] = self.nodata[step:]
        self.nodata[keep:] = False

    def finish_row(self, i: int) -> tuple[int, int, np.ndarray, np.ndarray]:
        """(r0, r1, (K, r1 - r0, W) blended logits, (r1 - r0, W) nodata) of tile row i,
        then advance: the whole-width form of row_span / blended / nodata_rows."""
        r0, r1 = self.row_span(i)
        out, nodata = self.blended(i), self.nodata_rows(i).copy()
        self.advance(i)
        return r0, r1, out, nodata
