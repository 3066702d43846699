"""Percentiles, summaries and throughput of effseg.bench.stats."""

import numpy as np
import pytest

from effseg.bench.stats import percentile, summarize, throughput


@pytest.mark.parametrize("n", [1, 2, 3, 5, 10, 37])
@pytest.mark.parametrize("q", [0, 10, 50, 90, 99, 100])
def test_percentile_matches_numpy(n, q):
    rng = np.random.default_rng(n)
    xs = rng.exponential(10.0, size=n).tolist()
    assert percentile(xs, q) == pytest.approx(np.percentile(xs, q), rel=1e-12, abs=1e-12)


def test_summarize_matches_numpy():
    xs = [5.0, 1.0, 4.0, 2.0, 3.0, 100.0]
    s = summarize(xs)
    assert s["median_ms"] == pytest.approx(np.median(xs))
    assert s["p90_ms"] == pytest.approx(np.percentile(xs, 90))
    assert s["p99_ms"] == pytest.approx(np.percentile(xs, 99))
    assert s["mean_ms"] == pytest.approx(np.mean(xs))
    assert s["std_ms"] == pytest.approx(np.std(xs))
    assert (s["min_ms"], s["max_ms"], s["iters"]) == (1.0, 100.0, 6)


def test_statistics_reject_bad_input():
    with pytest.raises(ValueError, match="q must be"):
        percentile([1.0], 101)
    with pytest.raises(ValueError, match="values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="times_ms"):
        summarize([])
    with pytest.raises(ValueError, match="median_ms"):
        throughput(0.0, 1, 8, 8)


def test_throughput():
    t = throughput(50.0, 2, 512, 256)
    assert t["fps"] == pytest.approx(40.0)
    assert t["mp_per_s"] == pytest.approx(40.0 * 512 * 256 / 1e6)
