"""effseg.bench.roofline: FLOPs of OpenVINO's executed nodes from their shapes, and the
bounds bench/bench_roofline.py reports."""
from __future__ import annotations

import pytest

from effseg.bench.roofline import dense_flops, summarise


def test_convolution_flops():
    # 3x3, 64 -> 48 channels on an odd 37 x 29 map: every output sums C * 9 products.
    assert dense_flops("Convolution", [[1, 64, 39, 31], [48, 64, 3, 3]], [1, 48, 37, 29]) \
        == 2 * (48 * 37 * 29) * (64 * 9)


def test_depthwise_and_grouped_flops():
    assert dense_flops("GroupConvolution", [[1, 64, 20, 20], [64, 1, 1, 7, 7]], [1, 64, 20, 20]) \
        == 2 * (64 * 20 * 20) * 49
    assert dense_flops("GroupConvolution", [[2, 32, 8, 8], [4, 16, 8, 3, 3]], [2, 64, 8, 8]) \
        == 2 * (2 * 64 * 8 * 8) * (8 * 9)


def test_transposed_convolution_flops_count_taps_once():
    # k=4, stride 2: each input element meets K * 16 weights, so |in| * K * 16 products
    # (|out| * C * 16 would count the zeros a stride-2 transposed conv never multiplies).
    got = dense_flops("ConvolutionBackpropData", [[1, 256, 16, 16], [256, 32, 4, 4]], [1, 32, 32, 32])
    assert got == 2 * (256 * 16 * 16) * (32 * 16)
    assert got == 2 * (32 * 32 * 32) * 256 * 4  # the same: 4 taps per output at stride 2


def test_matmul_flops_plain_and_transposed_first_input():
    assert dense_flops("MatMul", [[1, 2, 4096, 256], [1, 2, 256, 64]], [1, 2, 4096, 64]) == 2 * (2 * 4096 * 64) * 256
    assert dense_flops("MatMul", [[3, 256, 100], [3, 256, 7]], [3, 100, 7]) == 2 * (3 * 100 * 7) * 256


def test_other_or_dynamic_nodes_have_no_flops():
    assert dense_flops("Relu", [[1, 8, 4, 4]], [1, 8, 4, 4]) is None
    assert dense_flops("Convolution", [[1, 8, None, 4], [8, 8, 3, 3]], [1, 8, None, 2]) is None
    assert dense_flops("MatMul", [], [4, 4]) is None


def test_summary_bounds():
    nodes = [{"type": "Convolution", "ms": 10.0, "flops": 2e9},
             {"type": "Interpolate", "ms": 5.0, "flops": None}]
    s = summarise(nodes, peak_gflops=400.0)
    assert s["dense_gflops_per_s"] == pytest.approx(200.0)
    assert s["dense_fraction_of_peak"] == pytest.approx(0.5)
    assert s["dense_share"] == pytest.approx(10 / 15, abs=1e-4)
    # At the peak the 2 GFLOP take 5 ms: (5 + 5) / 15 with the rest as now, 5 / 15 free.
    assert s["bound_dense_at_peak"] == pytest.approx(10 / 15, abs=1e-3)
    assert s["bound_dense_only_at_peak"] == pytest.approx(5 / 15, abs=1e-3)
    assert list(s["by_type"]) == ["Convolution", "Interpolate"]


@pytest.mark.parametrize("nodes,peak,match", [
    ([{"type": "Relu", "ms": 1.0, "flops": None}], 0.0, "peak_gflops"),
    ([{"type": "Relu", "ms": 0.0, "flops": None}], 100.0, "no time"),
])
def test_summary_bad_input(nodes, peak, match):
    with pytest.raises(ValueError, match=match):
        summarise(nodes, peak)
