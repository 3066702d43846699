"""Depthwise 2-D convolution (groups = channels) with fused bias and activation, Triton.

Per (batch, channel) plane and tile of BLOCK_H x BLOCK_W outputs:

    acc[oh, ow] = bias[c] + sum_{i<KH, j<KW} w[c, i, j] * x[b, c, oh*sH - pT + i*dH, ow*sW - pL + j*dW]

with x read as zero outside the plane (masked loads), accumulated in float32 (float64
for float64 input), then the activation: 0 none, 1 relu, 2 relu6, 3 gelu (exact erf
form, x/2 * (1 + erf(x / sqrt 2))), 4 silu. The bottom / right padding is implied by
the output size (PyTorch's asymmetric "same" padding for even kernels).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

_BLOCK_H = 8
_BLOCK_W = 32
_NUM_WARPS = 4


@triton.jit
def _activate(z, ACT: tl.constexpr):
    if ACT == 1:
        z = tl.where(z > 0, z, 0.0)
    elif ACT == 2:
        z = tl.minimum(tl.where(z > 0, z, 0.0), 6.0)
    elif ACT == 3:
        z = 0.5 * z * (1.0 + tl.math.erf(z * 0.7071067811865476))
    elif ACT == 4:
        z = z / (1.0 + tl.exp(-z))
    return z


@triton.jit
def _depthwise_conv2d_fwd_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr,
    C, H, W, Ho, Wo,
    sH, sW, dH, dW, pT, pL,
    KH: tl.constexpr, KW: tl.constexpr, HAS_BIAS: tl.constexpr, ACT: tl.constexpr,
    IS_F64: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr,
):
    plane = tl.program_id(0)  # b * C + c
    c = plane % C
    oh = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)[:, None]
    ow = tl.program_id(2) * BLOCK_W + tl.arange(0, BLOCK_W)[None, :]
    acc_ty = tl.float64 if IS_F64 else tl.float32
    acc = tl.zeros((BLOCK_H, BLOCK_W), dtype=acc_ty)
    x_plane = x_ptr + plane.to(tl.int64) * H * W
    w_c = w_ptr + c * (KH * KW)
    for i in range(KH):
        ih = oh * sH - pT + i * dH
        row_ok = (ih >= 0) & (ih < H)
        for j in range(KW):
            iw = ow * sW - pL + j * dW
            m = row_ok & (iw >= 0) & (iw < W)
            xv = tl.load(x_plane + ih * W + iw, mask=m, other=0.0).to(acc_ty)
            wv = tl.load(w_c + i * KW + j).to(acc_ty)
            acc += xv * wv
    if HAS_BIAS:
        acc += tl.load(b_ptr + c).to(acc_ty)
    acc = _activate(acc, ACT)
    out = y_ptr + plane.to(tl.int64) * Ho * Wo + oh * Wo + ow
    tl.store(out, acc.to(y_ptr.dtype.element_ty), mask=(oh < Ho) & (ow < Wo))


def depthwise_conv2d_fwd(x: torch.Tensor, weight: torch.Tensor, bias, stride, pad_top_left,
                         dilation, out_hw, act: int) -> torch.Tensor:
    """x (B, C, H, W) and weight (C, 1, kH, kW) contiguous; bias (C,) or None; returns
    (B, C, Ho, Wo) in x's dtype."""
    B, C, H, W = x.shape
    kH, kW = weight.shape[2], weight.shape[3]
    Ho, Wo = out_hw
    y = torch.empty((B, C, Ho, Wo), dtype=x.dtype, device=x.device)
    if y.numel() == 0:
        return y
    grid = (B * C, triton.cdiv(Ho, _BLOCK_H), triton.cdiv(Wo, _BLOCK_W))
    _depthwise_conv2d_fwd_kernel[grid](
        x, weight, x if bias is None else bias, y,
        C, H, W, Ho, Wo,
        stride[0], stride[1], dilation[0], dilation[1], pad_top_left[0], pad_top_left[1],
        KH=kH, KW=kW, HAS_BIAS=bias is not None, ACT=act, IS_F64=x.dtype == torch.float64,
        BLOCK_H=_BLOCK_H, BLOCK_W=_BLOCK_W, num_warps=_NUM_WARPS,
    )
    return y
