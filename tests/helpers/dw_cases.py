"""Inputs and comparisons shared by the depthwise-conv tests."""
from __future__ import annotations

import torch

# Error relative to the output's scale, max|y - ref| / max(1, max|ref|), with ref
# computed in float64 from the same (rounded) inputs:
#   float32: accumulation order and the fused GELU/SiLU (|error| <= 1.5e-7 * max(1, |x|))
#   float64: accumulation order only
#   float16 / bfloat16: the final rounding (half an ulp: 4.9e-4 / 3.9e-3) plus the
#   float32 computation
TOL = {torch.float32: 2e-5, torch.float64: 1e-12, torch.float16: 1.5e-3, torch.bfloat16: 8e-3}


def make(B, C, H, W, kH, kW=None, *, bias=True, dtype=torch.float32, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    kW = kH if kW is None else kW
    x = torch.randn(B, C, H, W, generator=g, dtype=torch.float64)
    w = torch.randn(C, 1, kH, kW, generator=g, dtype=torch.float64) / (kH * kW) ** 0.5
    b = torch.randn(C, generator=g, dtype=torch.float64) if bias else None
    cast = {"dtype": dtype, "device": device}
    return x.to(**cast), w.to(**cast), None if b is None else b.to(**cast)


def rel_err(y: torch.Tensor, ref: torch.Tensor) -> float:
    y, ref = y.double().cpu(), ref.double().cpu()
    if y.numel() == 0:
        return 0.0
    return ((y - ref).abs().max() / ref.abs().max().clamp_min(1.0)).item()


def assert_close(y, ref, dtype, what=""):
    assert y.shape == ref.shape, f"{what}: shape {tuple(y.shape)} != {tuple(ref.shape)}"
    err = rel_err(y, ref)
    assert err <= TOL[dtype], f"{what}: error {err:.3g} > {TOL[dtype]} ({dtype})"
