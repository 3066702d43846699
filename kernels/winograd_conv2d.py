"""Winograd F(4x4, 3x3) transforms for a 3 x 3 stride-1 convolution, Triton.

Lavin & Gray (CVPR 2016), correlation form; per 4 x 4 output tile p = (n, ty, tx)
(row-major) and its 6 x 6 input window d at (4 ty - pad_h, 4 tx - pad_w), zero outside:

    V[i*6+j, c, p] = (B^T d B)[i, j]           (input transform, one program per
                                                BLOCK tiles and channel)
    M[ij] = U[ij] @ V[ij]                      (torch.bmm, U = G g G^T: 36 x K x C)
    Y[n, k, 4ty + a, 4tx + b] = relu?((A^T m A)[a, b] + bias[k])   (output transform)

V and M are float32 whatever x's dtype (float32 accumulation); Y has x's dtype.
B^T = [[4,0,-5,0,1,0], [0,-4,-4,1,1,0], [0,4,-4,-1,1,0], [0,-2,-1,2,1,0],
       [0,2,-1,-2,1,0], [0,4,0,-5,0,1]];  A^T = [[1,1,1,1,1,0], [0,1,-1,2,-2,0],
       [0,1,1,4,4,0], [0,1,-1,8,-8,1]].
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

_BLOCK = 64
_NUM_WARPS = 4


@triton.jit
def _bt(d0, d1, d2, d3, d4, d5):
    """B^T applied to the 6 values (d0..d5) of one line of a window."""
    p12 = d1 + d2
    m12 = d1 - d2
    m42 = d4 - d2
    m31 = d3 - d1
    return (4.0 * d0 - 5.0 * d2 + d4, (d3 + d4) - 4.0 * p12, (d4 - d3) + 4.0 * m12,
            m42 + 2.0 * m31, m42 - 2.0 * m31, 4.0 * d1 - 5.0 * d3 + d5)


@triton.jit
def _at(m0, m1, m2, m3, m4, m5):
    """A^T applied to the 6 values of one line of a transformed tile."""
    p12 = m1 + m2
    d12 = m1 - m2
    p34 = m3 + m4
    d34 = m3 - m4
    return m0 + p12 + p34, d12 + 2.0 * d34, p12 + 4.0 * p34, d12 + 8.0 * d34 + m5


@triton.jit
def _window_row(plane, row, c0, H, W, ok):
    """B^T across the 6 columns of window row `row` (zero outside the image)."""
    ok = ok & (row >= 0) & (row < H)
    ptr = plane + row * W + c0
    d0 = tl.load(ptr, mask=ok & (c0 >= 0) & (c0 < W), other=0.0).to(tl.float32)
    d1 = tl.load(ptr + 1, mask=ok & (c0 + 1 >= 0) & (c0 + 1 < W), other=0.0).to(tl.float32)
    d2 = tl.load(ptr + 2, mask=ok & (c0 + 2 >= 0) & (c0 + 2 < W), other=0.0).to(tl.float32)
    d3 = tl.load(ptr + 3, mask=ok & (c0 + 3 >= 0) & (c0 + 3 < W), other=0.0).to(tl.float32)
    d4 = tl.load(ptr + 4, mask=ok & (c0 + 4 >= 0) & (c0 + 4 < W), other=0.0).to(tl.float32)
    d5 = tl.load(ptr + 5, mask=ok & (c0 + 5 >= 0) & (c0 + 5 < W), other=0.0).to(tl.float32)
    return _bt(d0, d1, d2, d3, d4, d5)


@triton.jit
def _store_column(v_ptr, j, stride, d0, d1, d2, d3, d4, d5, mask):
    """B^T down window column j: V[(i*6 + j) * stride] for i = 0..5."""
    t0, t1, t2, t3, t4, t5 = _bt(d0, d1, d2, d3, d4, d5)
    tl.store(v_ptr + (0 * 6 + j) * stride, t0, mask=mask)
    tl.store(v_ptr + (1 * 6 + j) * stride, t1, mask=mask)
    tl.store(v_ptr + (2 * 6 + j) * stride, t2, mask=mask)
    tl.store(v_ptr + (3 * 6 + j) * stride, t3, mask=mask)
    tl.store(v_ptr + (4 * 6 + j) * stride, t4, mask=mask)
    tl.store(v_ptr + (5 * 6 + j) * stride, t5, mask=mask)


@triton.jit
def _input_transform_kernel(x_ptr, v_ptr, C, H, W, pad_h, pad_w, tiles_h, tiles_w, P, CP,
                            BLOCK: tl.constexpr):
    c = tl.program_id(1)
    p = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = p < P
    tx = p % tiles_w
    ty = (p // tiles_w) % tiles_h
    n = p // (tiles_w * tiles_h)
    r0 = 4 * ty - pad_h
    c0 = 4 * tx - pad_w
    plane = x_ptr + (n.to(tl.int64) * C + c) * H * W
    a0, a1, a2, a3, a4, a5 = _window_row(plane, r0, c0, H, W, ok)
    b0, b1, b2, b3, b4, b5 = _window_row(plane, r0 + 1, c0, H, W, ok)
    e0, e1, e2, e3, e4, e5 = _window_row(plane, r0 + 2, c0, H, W, ok)
    f0, f1, f2, f3, f4, f5 = _window_row(plane, r0 + 3, c0, H, W, ok)
    g0, g1, g2, g3, g4, g5 = _window_row(plane, r0 + 4, c0, H, W, ok)
    h0, h1, h2, h3, h4, h5 = _window_row(plane, r0 + 5, c0, H, W, ok)
    vp = v_ptr + c.to(tl.int64) * P + p
    stride = CP  # C * P, from the host (int64 when it needs to be)
    _store_column(vp, 0, stride, a0, b0, e0, f0, g0, h0, ok)
    _store_column(vp, 1, stride, a1, b1, e1, f1, g1, h1, ok)
    _store_column(vp, 2, stride, a2, b2, e2, f2, g2, h2, ok)
    _store_column(vp, 3, stride, a3, b3, e3, f3, g3, h3, ok)
    _store_column(vp, 4, stride, a4, b4, e4, f4, g4, h4, ok)
    _store_column(vp, 5, stride, a5, b5, e5, f5, g5, h5, ok)


@triton.jit
def _m_row(m_ptr, i, stride, ok):
    """A^T across the 6 columns of row i of the transformed tile."""
    m0 = tl.load(m_ptr + (i * 6 + 0) * stride, mask=ok, other=0.0)
    m1 = tl.load(m_ptr + (i * 6 + 1) * stride, mask=ok, other=0.0)
    m2 = tl.load(m_ptr + (i * 6 + 2) * stride, mask=ok, other=0.0)
    m3 = tl.load(m_ptr + (i * 6 + 3) * stride, mask=ok, other=0.0)
    m4 = tl.load(m_ptr + (i * 6 + 4) * stride, mask=ok, other=0.0)
    m5 = tl.load(m_ptr + (i * 6 + 5) * stride, mask=ok, other=0.0)
    return _at(m0, m1, m2, m3, m4, m5)


@triton.jit
def _store_out_column(y_plane, oy, ox, Ho, Wo, bias, s0, s1, s2, s3, s4, s5, ok,
                      RELU: tl.constexpr):
    """A^T down output column ox (+ bias, ReLU), 4 rows from oy, cropped to the image."""
    y0, y1, y2, y3 = _at(s0, s1, s2, s3, s4, s5)
    ok = ok & (ox < Wo)
    ptr = y_plane + oy * Wo + ox
    ty = y_plane.dtype.element_ty
    y0 = y0 + bias
    y1 = y1 + bias
    y2 = y2 + bias
    y3 = y3 + bias
    if RELU:
        y0 = tl.maximum(y0, 0.0)
        y1 = tl.maximum(y1, 0.0)
        y2 = tl.maximum(y2, 0.0)
        y3 = tl.maximum(y3, 0.0)
    tl.store(ptr, y0.to(ty), mask=ok & (oy < Ho))
    tl.store(ptr + Wo, y1.to(ty), mask=ok & (oy + 1 < Ho))
    tl.store(ptr + 2 * Wo, y2.to(ty), mask=ok & (oy + 2 < Ho))
    tl.store(ptr + 3 * Wo, y3.to(ty), mask=ok & (oy + 3 < Ho))


@triton.jit
def _output_transform_kernel(m_ptr, b_ptr, y_ptr, K, P, KP, tiles_h, tiles_w, Ho, Wo,
                             HAS_BIAS: tl.constexpr, RELU: tl.constexpr, BLOCK: tl.constexpr):
    k = tl.program_id(1)
    p = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = p < P
    tx = p % tiles_w
    ty = (p // tiles_w) % tiles_h
    n = p // (tiles_w * tiles_h)
    stride = KP  # K * P, from the host
    mp = m_ptr + k.to(tl.int64) * P + p
    a0, a1, a2, a3 = _m_row(mp, 0, stride, ok)
    b0, b1, b2, b3 = _m_row(mp, 1, stride, ok)
    e0, e1, e2, e3 = _m_row(mp, 2, stride, ok)
    f0, f1, f2, f3 = _m_row(mp, 3, stride, ok)
    g0, g1, g2, g3 = _m_row(mp, 4, stride, ok)
    h0, h1, h2, h3 = _m_row(mp, 5, stride, ok)
    bias = 0.0
    if HAS_BIAS:
        bias = tl.load(b_ptr + k).to(tl.float32)
    y_plane = y_ptr + (n.to(tl.int64) * K + k) * Ho * Wo
    oy = 4 * ty
    ox = 4 * tx
    _store_out_column(y_plane, oy, ox, Ho, Wo, bias, a0, b0, e0, f0, g0, h0, ok, RELU)
    _store_out_column(y_plane, oy, ox + 1, Ho, Wo, bias, a1, b1, e1, f1, g1, h1, ok, RELU)
    _store_out_column(y_plane, oy, ox + 2, Ho, Wo, bias, a2, b2, e2, f2, g2, h2, ok, RELU)
    _store_out_column(y_plane, oy, ox + 3, Ho, Wo, bias, a3, b3, e3, f3, g3, h3, ok, RELU)


def winograd_conv2d_fwd(x: torch.Tensor, weight_t: torch.Tensor, bias, pad_h: int, pad_w: int,
                        relu: bool) -> torch.Tensor:
    """x (N, C, H, W) and weight_t (36, K, C) contiguous, bias (K,) or None; returns
    (N, K, H + 2 pad_h - 2, W + 2 pad_w - 2) in x's dtype."""
    N, C, H, W = x.shape
    K = weight_t.shape[1]
    Ho, Wo = H + 2 * pad_h - 2, W + 2 * pad_w - 2
    th, tw = triton.cdiv(Ho, 4), triton.cdiv(Wo, 4)
    P = N * th * tw
    y = torch.empty((N, K, Ho, Wo), dtype=x.dtype, device=x.device)
    if P == 0:
        return y
    v = torch.empty((36, C, P), dtype=torch.float32, device=x.device)
    grid_in = (triton.cdiv(P, _BLOCK), C)
    _input_transform_kernel[grid_in](x, v, C, H, W, pad_h, pad_w, th, tw, P, C * P,
                                     BLOCK=_BLOCK, num_warps=_NUM_WARPS)
    m = torch.bmm(weight_t.to(torch.float32), v)
    grid_out = (triton.cdiv(P, _BLOCK), K)
    _output_transform_kernel[grid_out](m, y if bias is None else bias, y, K, P, K * P, th, tw,
                                       Ho, Wo,
                                       HAS_BIAS=bias is not None, RELU=relu, BLOCK=_BLOCK,
                                       num_warps=_NUM_WARPS)
    return y
