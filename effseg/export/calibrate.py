"""INT8 calibration statistics and the threshold methods that turn them into scales.

Numpy only (no torch, no onnxruntime): a `Histogram` of |x| per activation tensor,
filled batch by batch, and three ways to pick the clipping threshold T (the int8 scale
is then T / 127, symmetric, zero-point 0):

- "minmax": T = max |x| seen.
- "percentile": T = the given percentile (default 99.99) of |x|.
- "entropy": the KL-divergence search of Migacz, "8-bit Inference with TensorRT"
  (GTC 2017): for each candidate cut i of the histogram, P is the first i bins with the
  mass beyond the cut folded into bin i-1, Q is the same bins merged into 128 levels and
  spread back uniformly over P's non-empty bins; T is the cut with the smallest KL(P||Q).
  The zero bin is flattened to its neighbour first (see `entropy_threshold`).
"""
from __future__ import annotations

import numpy as np

METHODS = ("entropy", "percentile", "minmax")
DEFAULT_BINS = 2048
# Positive int8 levels 0..127 of the symmetric range: what the entropy search quantises to.
INT8_LEVELS = 128


class Histogram:
    """A histogram of |x| over [0, range) with a fixed bin count.

    The range is set by the first batch and doubled (merging pairs of bins, which is
    exact) whenever a later batch exceeds it, so one pass over the calibration data is
    enough; the effective resolution over [0, amax] stays between bins/2 and bins.
    """

    def __init__(self, bins: int = DEFAULT_BINS):
        if bins < 2 * INT8_LEVELS or bins % 2:
            raise ValueError(f"bins must be an even number >= {2 * INT8_LEVELS}, got {bins}")
        self.bins = bins
        self.counts = np.zeros(bins, dtype=np.float64)
        self.range = 0.0
        self.amax = 0.0
        # Signed extremes: an asymmetric (uint8) range needs to know which side is empty.
        self.lo = 0.0
        self.hi = 0.0

    @property
    def width(self) -> float:
        return self.range / self.bins

    @property
    def total(self) -> float:
        return float(self.counts.sum())

    def update(self, x) -> None:
        v = np.asarray(x, dtype=np.float32).ravel()
        if v.size == 0:
            return
        a = np.abs(v)
        if not np.all(np.isfinite(a)):
            raise ValueError("calibration activations contain NaN or Inf; check the model and its inputs")
        self.lo = min(self.lo, float(v.min()))
        self.hi = max(self.hi, float(v.max()))
        amax = float(a.max())
        self.amax = max(self.amax, amax)
        if self.range == 0.0:
            if amax == 0.0:
                self.counts[0] += a.size  # all zeros so far: keep them, set the range later
                return
            self.range = amax
        while amax > self.range:
            # Merge neighbouring bins into the lower half: the range doubles exactly.
            self.counts[: self.bins // 2] = self.counts.reshape(-1, 2).sum(axis=1)
            self.counts[self.bins // 2:] = 0
            self.range *= 2.0
        idx = np.minimum((a * (self.bins / self.range)).astype(np.int64), self.bins - 1)
        self.counts += np.bincount(idx, minlength=self.bins)


def minmax_threshold(hist: Histogram) -> float:
    return float(hist.amax)


def percentile_threshold(hist: Histogram, percentile: float = 99.99) -> float:
    """The percentile of |x|, interpolated linearly inside the bin where it falls."""
    if not 0.0 < percentile <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    total = hist.total
    if total == 0 or hist.range == 0.0:
        return float(hist.amax)
    cdf = np.cumsum(hist.counts)
    target = total * percentile / 100.0
    i = int(np.searchsorted(cdf, target, side="left"))
    i = min(i, hist.bins - 1)
    below = cdf[i - 1] if i > 0 else 0.0
    frac = (target - below) / hist.counts[i] if hist.counts[i] > 0 else 1.0
    return float(min((i + frac) * hist.width, hist.amax))


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    if q.sum() <= 0:
        return float("inf")
    p = p / p.sum()
    q = q / q.sum()
    m = p > 0
    # Q is zero where P is not only when a whole merged level was empty before the
    # outliers were folded in: a floor keeps the divergence finite but large.
    return float(np.sum(p[m] * np.log(p[m] / np.maximum(q[m], 1e-12))))


def entropy_threshold(hist: Histogram, levels: int = INT8_LEVELS) -> float:
    """Migacz's KL-divergence threshold (see the module docstring)."""
    counts = hist.counts.copy()
    # The first bin holds the exact zeros (a spike after ReLU): merged into level 0 it
    # would dominate the divergence and drive the cut far too low, so it is flattened to
    # its neighbour, as NVIDIA's pytorch-quantization does.
    counts[0] = counts[1]
    nonzero = np.flatnonzero(counts)
    if hist.range == 0.0 or nonzero.size == 0:
        return float(hist.amax)
    last = int(nonzero[-1]) + 1  # cuts beyond the last filled bin change nothing
    if last <= levels:
        return float(hist.amax)
    best_kl, best_i = np.inf, last
    for i in range(levels, last + 1):
        p = counts[:i].copy()
        p[-1] += counts[i:].sum()
        starts = np.linspace(0, i, levels + 1).astype(np.int64)[:-1]
        sizes = np.diff(np.append(starts, i))
        mask = p > 0
        level_mass = np.add.reduceat(counts[:i], starts)
        level_nonzero = np.add.reduceat(mask.astype(np.float64), starts)
        q = np.repeat(level_mass / np.maximum(level_nonzero, 1.0), sizes) * mask
        kl = _kl(p, q)
        if kl < best_kl:
            best_kl, best_i = kl, i
    return float(min(best_i * hist.width, hist.amax))


def threshold(hist: Histogram, method: str = "entropy", *, percentile: float = 99.99) -> float:
    """The clipping threshold of one tensor's histogram by `method`."""
    check_method(method)
    if method == "minmax":
        return minmax_threshold(hist)
    if method == "percentile":
        return percentile_threshold(hist, percentile)
    return entropy_threshold(hist)


def signed_range(hist: Histogram, method: str = "entropy", *, percentile: float = 99.99) -> tuple:
    """(low, high) for an asymmetric scale: the seen extremes, each clipped at the |x| threshold.

    Both ends include 0 (a quantised 0 must be exact); after a ReLU low is 0 and the whole
    uint8 range covers [0, T].
    """
    t = threshold(hist, method, percentile=percentile)
    return max(min(hist.lo, 0.0), -t), min(max(hist.hi, 0.0), t)


def check_method(method) -> None:
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}; got {method!r}")
