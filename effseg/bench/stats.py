"""Statistics of per-iteration timings: percentiles and throughput."""
from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0 <= q <= 100) with linear interpolation between the two
    nearest ranks: numpy.percentile's default ("linear", Hyndman & Fan type 7).
    With few samples the high percentiles approach the maximum."""
    if not 0 <= q <= 100:
        raise ValueError(f"q must be in [0, 100], got {q}")
    xs = sorted(float(v) for v in values)
    if not xs:
        raise ValueError("values must not be empty")
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summarize(times_ms: Sequence[float]) -> dict:
    """Median, p90, p99, mean, min, max and standard deviation (population) in ms."""
    if not times_ms:
        raise ValueError("times_ms must not be empty")
    xs = [float(t) for t in times_ms]
    return {"median_ms": statistics.median(xs), "p90_ms": percentile(xs, 90),
            "p99_ms": percentile(xs, 99), "mean_ms": statistics.fmean(xs),
            "min_ms": min(xs), "max_ms": max(xs), "std_ms": statistics.pstdev(xs),
            "iters": len(xs)}


def throughput(median_ms: float, batch: int, height: int, width: int) -> dict:
    """Images per second and megapixels per second at the median latency of one batch."""
    if median_ms <= 0:
        raise ValueError(f"median_ms must be positive, got {median_ms}")
    fps = batch * 1e3 / median_ms
    return {"fps": fps, "mp_per_s": fps * height * width / 1e6}
