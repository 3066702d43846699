"""GeoSeg-style global linear attention, forward and backward, as Triton kernels.

Math (see effseg/ops/linear_attention_ref.py), per batch, with phi the feature map
(taylor: x / ||x|| over channels, zero columns kept zero; softplus: softplus(x)) and
a = 1 for taylor, 0 for softplus:

    KV^T = V phi(K)^T (Cv x Ck),  s_k = sum_n phi(k_n),  S_v = sum_n v_n
    den_n = a N + phi(q_n) . (s_k + eps),   out_n = (KV^T phi(q_n) + a S_v) / den_n

Forward: `_summary_kernel` forms partial KV^T / s_k / S_v over slices of N (grid: batch
x N-slice x Cv-block), summed on the host into `stats` (B, Cv+1, Ck+1) = [[KV^T, S_v],
[s_k, N]]; `_out_kernel` then makes the output tile by tile (batch x N-block x Cv-block).

Backward, with g = dL/dout:  dnum_n = g_n / den_n, dden_n = -(g_n . out_n) / den_n,
    dphi_q = KV dnum_n + dden_n (s_k + eps),  dKV^T = sum_n dnum_n phi(q_n)^T,
    ds_k = sum_n dden_n phi(q_n),  dS_v = a sum_n dnum_n,
    dphi_k = dKV v_n + ds_k,  dv_n = dKV^T phi(k_n) + dS_v,
    taylor: dx = (dphi - x^ (x^ . dphi)) / ||x||;  softplus: dx = dphi sigmoid(x).
`_bwd_q_kernel` gives dq (and per-position 1/den, dden), `_bwd_summary_kernel` the
partial dKV^T / ds_k / dS_v, `_bwd_k_kernel` dk, `_bwd_v_kernel` dv.

Channels are padded to powers of two >= 16 (tl.dot's minimum) by masked loads; the whole
Ck range sits in one tile because the l2 norm needs every channel of a column. Products
use input_precision="ieee" (no TF32), so results match the fp32 reference.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

_NUM_WARPS = 4
_MAX_SPLITS = 64
_PARTIAL_BYTES = 64 << 20


# ----------------------------------------------------------------------------------
# device helpers
# ----------------------------------------------------------------------------------

@triton.jit
def _cvt(x, IS_F64: tl.constexpr):
    if IS_F64:
        y = x.to(tl.float64)
    else:
        y = x.to(tl.float32)
    return y


@triton.jit
def _feature(x, mask, TAYLOR: tl.constexpr):
    """phi over axis 0 of a (channels, positions) tile and what its backward needs:
    1/||x|| per column (taylor) or sigmoid(x) (softplus)."""
    if TAYLOR:
        ss = tl.sum(x * x, axis=0)
        inv = tl.where(ss > 0, 1.0 / tl.sqrt(tl.where(ss > 0, ss, 1.0)), 0.0)
        phi = x * inv[None, :]
        aux = phi * 0 + inv[None, :]
    else:
        # torch's softplus: x above 20 as is, else log1p(exp(x)), log1p(e) evaluated as
        # log(w) * e / (w - 1), w = 1 + e, which keeps small e exact.
        e = tl.exp(tl.minimum(x, 20.0))
        w = 1.0 + e
        l1p = tl.where(w == 1.0, e, tl.log(w) * e / tl.where(w == 1.0, 1.0, w - 1.0))
        phi = tl.where(mask, tl.where(x > 20.0, x, l1p), 0.0)
        aux = tl.where(mask, tl.where(x > 20.0, 1.0, e / w), 0.0)
    return phi, aux


@triton.jit
def _feature_bwd(phi, aux, dphi, TAYLOR: tl.constexpr):
    if TAYLOR:
        t = tl.sum(phi * dphi, axis=0)
        dx = aux * (dphi - phi * t[None, :])
    else:
        dx = dphi * aux
    return dx


# ----------------------------------------------------------------------------------
# forward
# ----------------------------------------------------------------------------------

@triton.jit
def _summary_kernel(k_ptr, v_ptr, part_ptr, Ck, Cv, N, n_per_split, S,
                    TAYLOR: tl.constexpr, IS_F64: tl.constexpr,
                    BK: tl.constexpr, BV: tl.constexpr, BN: tl.constexpr):
    b = tl.program_id(0)
    s = tl.program_id(1)
    vb = tl.program_id(2)
    offs_k = tl.arange(0, BK)
    offs_v = vb * BV + tl.arange(0, BV)
    mk = offs_k < Ck
    mv = offs_v < Cv
    if IS_F64:
        acc = tl.zeros((BV, BK), dtype=tl.float64)
        sk = tl.zeros((BK,), dtype=tl.float64)
        sv = tl.zeros((BV,), dtype=tl.float64)
    else:
        acc = tl.zeros((BV, BK), dtype=tl.float32)
        sk = tl.zeros((BK,), dtype=tl.float32)
        sv = tl.zeros((BV,), dtype=tl.float32)
    n_lo = s * n_per_split
    n_hi = tl.minimum(n_lo + n_per_split, N)
    for n0 in range(n_lo, n_hi, BN):
        offs_n = n0 + tl.arange(0, BN)
        mn = offs_n < n_hi
        mkn = mk[:, None] & mn[None, :]
        x = _cvt(tl.load(k_ptr + b * Ck * N + offs_k[:, None] * N + offs_n[None, :], mask=mkn,
                         other=0.0), IS_F64)
        phi, _ = _feature(x, mkn, TAYLOR)
        vt = _cvt(tl.load(v_ptr + b * Cv * N + offs_v[:, None] * N + offs_n[None, :],
                          mask=mv[:, None] & mn[None, :], other=0.0), IS_F64)
        acc += tl.dot(vt, tl.trans(phi), input_precision="ieee")
        sk += tl.sum(phi, axis=1)
        sv += tl.sum(vt, axis=1)
    # part (B, S, Cv + 1, Ck + 1), the stats layout
    base = part_ptr + (b * S + s) * (Cv + 1) * (Ck + 1)
    tl.store(base + offs_v[:, None] * (Ck + 1) + offs_k[None, :], acc, mask=mv[:, None] & mk[None, :])
    tl.store(base + offs_v * (Ck + 1) + Ck, sv, mask=mv)
    if vb == 0:
        tl.store(base + Cv * (Ck + 1) + offs_k, sk, mask=mk)


@triton.jit
def _out_kernel(q_ptr, stats_ptr, out_ptr, Ck, Cv, N, eps,
                TAYLOR: tl.constexpr, IS_F64: tl.constexpr,
                BK: tl.constexpr, BV: tl.constexpr, BN: tl.constexpr):
    b = tl.program_id(0)
    nb = tl.program_id(1)
    vb = tl.program_id(2)
    offs_k = tl.arange(0, BK)
    offs_v = vb * BV + tl.arange(0, BV)
    offs_n = nb * BN + tl.arange(0, BN)
    mk = offs_k < Ck
    mv = offs_v < Cv
    mn = offs_n < N
    mkn = mk[:, None] & mn[None, :]
    x = _cvt(tl.load(q_ptr + b * Ck * N + offs_k[:, None] * N + offs_n[None, :], mask=mkn,
                     other=0.0), IS_F64)
    phi, _ = _feature(x, mkn, TAYLOR)
    st = stats_ptr + b * (Cv + 1) * (Ck + 1)
    ske = tl.load(st + Cv * (Ck + 1) + offs_k, mask=mk, other=0.0) + tl.where(mk, eps, 0.0)
    den = tl.sum(phi * ske[:, None], axis=0)
    kvt = tl.load(st + offs_v[:, None] * (Ck + 1) + offs_k[None, :], mask=mv[:, None] & mk[None, :],
                  other=0.0)
    num = tl.dot(kvt, phi, input_precision="ieee")
    if TAYLOR:
        sv = tl.load(st + offs_v * (Ck + 1) + Ck, mask=mv, other=0.0)
        num += sv[:, None]
        den += N
    # padding columns (never stored) would divide 0 by 0
    out = num / tl.where(mn, den, 1.0)[None, :]
    tl.store(out_ptr + b * Cv * N + offs_v[:, None] * N + offs_n[None, :],
             out.to(out_ptr.dtype.element_ty), mask=mv[:, None] & mn[None, :])


# ----------------------------------------------------------------------------------
# backward
# ----------------------------------------------------------------------------------

@triton.jit
def _bwd_q_kernel(q_ptr, g_ptr, o_ptr, stats_ptr, dq_ptr, rden_ptr, dden_ptr, Ck, Cv, N, eps,
                  TAYLOR: tl.constexpr, IS_F64: tl.constexpr,
                  BK: tl.constexpr, BV: tl.constexpr, BN: tl.constexpr):
    b = tl.program_id(0)
    nb = tl.program_id(1)
    offs_k = tl.arange(0, BK)
    offs_n = nb * BN + tl.arange(0, BN)
    mk = offs_k < Ck
    mn = offs_n < N
    mkn = mk[:, None] & mn[None, :]
    x = _cvt(tl.load(q_ptr + b * Ck * N + offs_k[:, None] * N + offs_n[None, :], mask=mkn,
                     other=0.0), IS_F64)
    phi, aux = _feature(x, mkn, TAYLOR)
    st = stats_ptr + b * (Cv + 1) * (Ck + 1)
    ske = tl.load(st + Cv * (Ck + 1) + offs_k, mask=mk, other=0.0) + tl.where(mk, eps, 0.0)
    den = tl.sum(phi * ske[:, None], axis=0)
    if TAYLOR:
        den += N
    rden = tl.where(mn, 1.0 / tl.where(mn, den, 1.0), 0.0)
    dphi = phi * 0
    god = rden * 0
    for v0 in range(0, Cv, BV):
        offs_v = v0 + tl.arange(0, BV)
        mv = offs_v < Cv
        mvn = mv[:, None] & mn[None, :]
        g = _cvt(tl.load(g_ptr + b * Cv * N + offs_v[:, None] * N + offs_n[None, :], mask=mvn,
                         other=0.0), IS_F64)
        o = _cvt(tl.load(o_ptr + b * Cv * N + offs_v[:, None] * N + offs_n[None, :], mask=mvn,
                         other=0.0), IS_F64)
        gd = g * rden[None, :]
        god += tl.sum(gd * o, axis=0)
        kvt = tl.load(st + offs_v[:, None] * (Ck + 1) + offs_k[None, :],
                      mask=mv[:, None] & mk[None, :], other=0.0)
        dphi += tl.dot(tl.trans(kvt), gd, input_precision="ieee")
    dden = -god
    dphi += dden[None, :] * ske[:, None]
    dx = _feature_bwd(phi, aux, dphi, TAYLOR)
    tl.store(dq_ptr + b * Ck * N + offs_k[:, None] * N + offs_n[None, :],
             dx.to(dq_ptr.dtype.element_ty), mask=mkn)
    tl.store(rden_ptr + b * N + offs_n, rden, mask=mn)
    tl.store(dden_ptr + b * N + offs_n, dden, mask=mn)


@triton.jit
def _bwd_summary_kernel(q_ptr, g_ptr, rden_ptr, dden_ptr, part_ptr, Ck, Cv, N, n_per_split, S,
                        TAYLOR: tl.constexpr, IS_F64: tl.constexpr,
                        BK: tl.constexpr, BV: tl.constexpr, BN: tl.constexpr):
    b = tl.program_id(0)
    s = tl.program_id(1)
    vb = tl.program_id(2)
    offs_k = tl.arange(0, BK)
    offs_v = vb * BV + tl.arange(0, BV)
    mk = offs_k < Ck
    mv = offs_v < Cv
    if IS_F64:
        acc = tl.zeros((BV, BK), dtype=tl.float64)
        dsk = tl.zeros((BK,), dtype=tl.float64)
        dsv = tl.zeros((BV,), dtype=tl.float64)
    else:
        acc = tl.zeros((BV, BK), dtype=tl.float32)
        dsk = tl.zeros((BK,), dtype=tl.float32)
        dsv = tl.zeros((BV,), dtype=tl.float32)
    n_lo = s * n_per_split
    n_hi = tl.minimum(n_lo + n_per_split, N)
    for n0 in range(n_lo, n_hi, BN):
        offs_n = n0 + tl.arange(0, BN)
        mn = offs_n < n_hi
        mkn = mk[:, None] & mn[None, :]
        x = _cvt(tl.load(q_ptr + b * Ck * N + offs_k[:, None] * N + offs_n[None, :], mask=mkn,
                         other=0.0), IS_F64)
        phi, _ = _feature(x, mkn, TAYLOR)
        rden = tl.load(rden_ptr + b * N + offs_n, mask=mn, other=0.0)
        dden = tl.load(dden_ptr + b * N + offs_n, mask=mn, other=0.0)
        g = _cvt(tl.load(g_ptr + b * Cv * N + offs_v[:, None] * N + offs_n[None, :],
                         mask=mv[:, None] & mn[None, :], other=0.0), IS_F64)
        gd = g * rden[None, :]
        acc += tl.dot(gd, tl.trans(phi), input_precision="ieee")
        dsv += tl.sum(gd, axis=1)
        dsk += tl.sum(phi * dden[None, :], axis=1)
    if not TAYLOR:
        dsv = dsv * 0
    base = part_ptr + (b * S + s) * (Cv + 1) * (Ck + 1)
    tl.store(base + offs_v[:, None] * (Ck + 1) + offs_k[None, :], acc, mask=mv[:, None] & mk[None, :])
    tl.store(base + offs_v * (Ck + 1) + Ck, dsv, mask=mv)
    if vb == 0:
        tl.store(base + Cv * (Ck + 1) + offs_k, dsk, mask=mk)


@triton.jit
def _bwd_k_kernel(k_ptr, v_ptr, dsum_ptr, dk_ptr, Ck, Cv, N,
                  TAYLOR: tl.constexpr, IS_F64: tl.constexpr,
                  BK: tl.constexpr, BV: tl.constexpr, BN: tl.constexpr):
    b = tl.program_id(0)
    nb = tl.program_id(1)
    offs_k = tl.arange(0, BK)
    offs_n = nb * BN + tl.arange(0, BN)
    mk = offs_k < Ck
    mn = offs_n < N
    mkn = mk[:, None] & mn[None, :]
    x = _cvt(tl.load(k_ptr + b * Ck * N + offs_k[:, None] * N + offs_n[None, :], mask=mkn,
                     other=0.0), IS_F64)
    phi, aux = _feature(x, mkn, TAYLOR)
    ds = dsum_ptr + b * (Cv + 1) * (Ck + 1)
    dphi = phi * 0
    for v0 in range(0, Cv, BV):
        offs_v = v0 + tl.arange(0, BV)
        mv = offs_v < Cv
        vt = _cvt(tl.load(v_ptr + b * Cv * N + offs_v[:, None] * N + offs_n[None, :],
                          mask=mv[:, None] & mn[None, :], other=0.0), IS_F64)
        dkvt = tl.load(ds + offs_v[:, None] * (Ck + 1) + offs_k[None, :],
                       mask=mv[:, None] & mk[None, :], other=0.0)
        dphi += tl.dot(tl.trans(dkvt), vt, input_precision="ieee")
    dsk = tl.load(ds + Cv * (Ck + 1) + offs_k, mask=mk, other=0.0)
    dphi += dsk[:, None]
    dx = _feature_bwd(phi, aux, dphi, TAYLOR)
    tl.store(dk_ptr + b * Ck * N + offs_k[:, None] * N + offs_n[None, :],
             dx.to(dk_ptr.dtype.element_ty), mask=mkn)


@triton.jit
def _bwd_v_kernel(k_ptr, dsum_ptr, dv_ptr, Ck, Cv, N,
                  TAYLOR: tl.constexpr, IS_F64: tl.constexpr,
                  BK: tl.constexpr, BV: tl.constexpr, BN: tl.constexpr):
    b = tl.program_id(0)
    nb = tl.program_id(1)
    vb = tl.program_id(2)
    offs_k = tl.arange(0, BK)
    offs_v = vb * BV + tl.arange(0, BV)
    offs_n = nb * BN + tl.arange(0, BN)
    mk = offs_k < Ck
    mv = offs_v < Cv
    mn = offs_n < N
    mkn = mk[:, None] & mn[None, :]
    x = _cvt(tl.load(k_ptr + b * Ck * N + offs_k[:, None] * N + offs_n[None, :], mask=mkn,
                     other=0.0), IS_F64)
    phi, _ = _feature(x, mkn, TAYLOR)
    ds = dsum_ptr + b * (Cv + 1) * (Ck + 1)
    dkvt = tl.load(ds + offs_v[:, None] * (Ck + 1) + offs_k[None, :],
                   mask=mv[:, None] & mk[None, :], other=0.0)
    dv = tl.dot(dkvt, phi, input_precision="ieee")
    dsv = tl.load(ds + offs_v * (Ck + 1) + Ck, mask=mv, other=0.0)
    dv += dsv[:, None]
    tl.store(dv_ptr + b * Cv * N + offs_v[:, None] * N + offs_n[None, :],
             dv.to(dv_ptr.dtype.element_ty), mask=mv[:, None] & mn[None, :])


# ----------------------------------------------------------------------------------
# host side
# ----------------------------------------------------------------------------------

def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _blocks(Ck: int, Cv: int):
    BK = max(16, triton.next_power_of_2(Ck))
    BV = max(16, min(64, triton.next_power_of_2(Cv)))
    # the (BK, BN) feature tile lives in registers: fewer positions for wide Ck
    BN = max(16, min(64, 4096 // BK))
    return BK, BV, BN


def _splits(B: int, Ck: int, Cv: int, N: int, BN: int) -> tuple[int, int]:
    """(number of N-slices, positions per slice) for the summary kernels."""
    nblk = triton.cdiv(N, BN)
    per = (Cv + 1) * (Ck + 1) * 4 * B
    s = max(1, min(nblk, _MAX_SPLITS, _PARTIAL_BYTES // per))
    per_split = triton.cdiv(nblk, s) * BN
    return triton.cdiv(N, per_split), per_split


def linear_attention_fwd(q, k, v, taylor: bool, eps: float):
    """(out in q's dtype, stats (B, Cv+1, Ck+1) in the compute dtype)."""
    B, Ck, N = q.shape
    Cv = v.shape[1]
    cd = _compute_dtype(q)
    is64 = cd == torch.float64
    BK, BV, BN = _blocks(Ck, Cv)
    S, per_split = _splits(B, Ck, Cv, N, BN)
    part = torch.empty(B, S, Cv + 1, Ck + 1, device=q.device, dtype=cd)
    _summary_kernel[(B, S, triton.cdiv(Cv, BV))](
        k, v, part, Ck, Cv, N, per_split, S, TAYLOR=taylor, IS_F64=is64,
        BK=BK, BV=BV, BN=BN, num_warps=_NUM_WARPS)
    stats = part.sum(1)
    stats[:, Cv, Ck] = N
    out = torch.empty(B, Cv, N, device=q.device, dtype=q.dtype)
    _out_kernel[(B, triton.cdiv(N, BN), triton.cdiv(Cv, BV))](
        q, stats, out, Ck, Cv, N, eps, TAYLOR=taylor, IS_F64=is64,
        BK=BK, BV=BV, BN=BN, num_warps=_NUM_WARPS)
    return out, stats


def linear_attention_bwd(dout, q, k, v, out, stats, taylor: bool, eps: float):
    """(dq, dk, dv) in the compute dtype."""
    B, Ck, N = q.shape
    Cv = v.shape[1]
    cd = _compute_dtype(q)
    is64 = cd == torch.float64
    BK, BV, BN = _blocks(Ck, Cv)
    dev = q.device
    stats = stats.to(cd)
    dq = torch.empty(B, Ck, N, device=dev, dtype=cd)
    rden = torch.empty(B, N, device=dev, dtype=cd)
    dden = torch.empty(B, N, device=dev, dtype=cd)
    _bwd_q_kernel[(B, triton.cdiv(N, BN))](
        q, dout, out, stats, dq, rden, dden, Ck, Cv, N, eps, TAYLOR=taylor, IS_F64=is64,
        BK=BK, BV=BV, BN=BN, num_warps=_NUM_WARPS)
    S, per_split = _splits(B, Ck, Cv, N, BN)
    part = torch.empty(B, S, Cv + 1, Ck + 1, device=dev, dtype=cd)
    _bwd_summary_kernel[(B, S, triton.cdiv(Cv, BV))](
        q, dout, rden, dden, part, Ck, Cv, N, per_split, S, TAYLOR=taylor, IS_F64=is64,
        BK=BK, BV=BV, BN=BN, num_warps=_NUM_WARPS)
    dsum = part.sum(1)
    dk = torch.empty(B, Ck, N, device=dev, dtype=cd)
    dv = torch.empty(B, Cv, N, device=dev, dtype=cd)
    _bwd_k_kernel[(B, triton.cdiv(N, BN))](
        k, v, dsum, dk, Ck, Cv, N, TAYLOR=taylor, IS_F64=is64,
        BK=BK, BV=BV, BN=BN, num_warps=_NUM_WARPS)
    _bwd_v_kernel[(B, triton.cdiv(N, BN), triton.cdiv(Cv, BV))](
        k, dsum, dv, Ck, Cv, N, TAYLOR=taylor, IS_F64=is64,
        BK=BK, BV=BV, BN=BN, num_warps=_NUM_WARPS)
    return dq, dk, dv
