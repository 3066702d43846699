"""FlopCounterMode counts effseg's custom ops with the documented formulas."""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from effseg.ops import depthwise_conv2d, linear_attention, selective_scan


def _count(fn) -> int:
    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops()


def test_selective_scan_flops():
    b, d, n, length = 2, 8, 4, 11
    u, dt = torch.randn(b, d, length), torch.rand(b, d, length)
    args = (u, dt, -torch.rand(d, n), torch.randn(b, n, length), torch.randn(b, n, length))
    assert _count(lambda: selective_scan(*args, backend="cpp")) == 6 * b * d * length * n


def test_linear_attention_flops():
    q, k, v = torch.rand(2, 4, 30), torch.rand(2, 4, 30), torch.randn(2, 16, 30)
    assert _count(lambda: linear_attention(q, k, v, kind="taylor", backend="cpp")) == 4 * 2 * 30 * 4 * 16


def test_depthwise_conv2d_flops():
    x, w = torch.randn(1, 3, 9, 7), torch.randn(3, 1, 5, 5)
    got = _count(lambda: depthwise_conv2d(x, w, padding=2, backend="cpp"))
    assert got == 2 * 3 * 9 * 7 * 25
    # Same count as torch's own conv formula for the grouped convolution.
    want = _count(lambda: torch.nn.functional.conv2d(x, w, padding=2, groups=3))
    assert got == want


def test_winograd_conv2d_flops():
    from effseg.ops import winograd_conv2d, winograd_weight

    x, w = torch.randn(2, 3, 9, 7), torch.randn(5, 3, 3, 3)
    wt = winograd_weight(w)  # computed outside: its einsum would be counted too
    got = _count(lambda: winograd_conv2d(x, w, padding=(1, 0), weight_t=wt, backend="cpp"))
    # Counted as the direct convolution it computes, as torch counts F.conv2d.
    assert got == 2 * 2 * 5 * 9 * 5 * 3 * 9
    assert got == _count(lambda: torch.nn.functional.conv2d(x, w, padding=(1, 0)))
