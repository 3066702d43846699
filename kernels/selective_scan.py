"""Selective scan (Mamba S6) forward and backward as Triton kernels.

Math implemented (S6 selective scan, Gu & Dao 2023, "Mamba: Linear-Time Sequence
Modeling with Selective State Spaces"), per batch b, channel d, state n, time t:

    x_t   = delta[b,d,t] + delta_bias[d]
    dt_t  = softplus(x_t)                     (optional)
    a_t   = exp(dt_t * A[d,n]),  b_t = dt_t * B[b,g(d),n,t] * u[b,d,t]
    h_t   = a_t * h_{t-1} + b_t              (h_{-1} = h0 or 0)
    y_t   = sum_n C[b,g(d),n,t] h_t + D[d] u_t,   out_t = y_t * silu(z_t)

The first-order linear recurrence h_t = a_t h_{t-1} + b_t is evaluated, inside a
chunk of BLOCK_L steps, as an associative scan over pairs (a, b) with

    (a1, b1) o (a2, b2) = (a1 * a2, a2 * b1 + b2)     ("apply 1, then 2")

so that after the scan the pair (P_t, S_t) at t gives h_t = P_t * h_carry + S_t;
the carry is the last column and moves from chunk to chunk.

Backward: the adjoint lam_t = dL/dh_t obeys lam_t = g_t C_t + a_{t+1} lam_{t+1}
(g_t = dout_t * silu(z_t)); it is the same affine recurrence run backwards in time,
so it is the same scan over pairs (a_{t+1}, g_t C_t) taken from the end of the chunk.
By default the kernel gets the backwards order without ``reverse=True``: it loads the
chunk's inputs of that scan in reversed time order, runs an ordinary forward scan and
flips the result back with ``tl.flip`` (``reverse=True`` has had correctness reports for
non-commutative combines on some Triton releases; ``use_reverse_scan=True`` selects it).
The states h_{t-1} a chunk needs are recomputed from chunk-start states that a first
forward sweep of the backward kernel stores in a scratch tensor.

Gradients (all per (b, d), reduced over batch by torch where shared):
    dC_t[n] = g_t h_t[n]                 dB_t[n] = lam_t[n] dt_t u_t
    du_t    = g_t D + dt_t sum_n lam_t[n] B_t[n]
    ddt_t   = sum_n lam_t[n] (h_{t-1}[n] A[n] a_t[n] + B_t[n] u_t)
    dA[n]   = sum_t lam_t[n] h_{t-1}[n] dt_t a_t[n]
    ddelta_t= ddt_t * sigmoid(x_t) when softplus is applied and x_t <= 20, else ddt_t
    dbias   = sum_t ddelta_t,  dD = sum_t g_t u_t,  dh0 = a_0 lam_0,
    dz_t    = dout_t y_t silu'(z_t)      (y_t before the gate)
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

# Default chunk lengths: the (BLOCK_N, BLOCK_L) tiles are kept near these many elements.
_FWD_TILE = 2048
_BWD_TILE = 1024
_MIN_BLOCK_L = 16
_MAX_BLOCK_L_FWD = 256
_MAX_BLOCK_L_BWD = 128
_NUM_WARPS = 4


# ----------------------------------------------------------------------------------
# device helpers
# ----------------------------------------------------------------------------------

@triton.jit
def _affine_combine(a1, b1, a2, b2):
    # composition of h -> a1 h + b1 followed by h -> a2 h + b2
    return a1 * a2, a2 * b1 + b2


@triton.jit
def _cvt(x, IS_F64: tl.constexpr):
    if IS_F64:
        y = x.to(tl.float64)
    else:
        y = x.to(tl.float32)
    return y


@triton.jit
def _sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def _softplus(x):
    # softplus(x) = x for x > 20, else log1p(exp(x)); log1p(e) is evaluated as
    # log(w) * e / (w - 1) with w = 1 + e (exact-rounding trick), and e itself when w == 1.
    e = tl.exp(tl.minimum(x, 20.0))
    w = 1.0 + e
    lp = tl.where(w == 1.0, e, tl.log(w) * (e / (w - 1.0)))
    return tl.where(x > 20.0, x, lp)


@triton.jit
def _load_dt(delta_ptr, offs, mask, bias, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
             IS_F64: tl.constexpr):
    """(x, dt) at the given offsets; dt is 0 where mask is false."""
    x = _cvt(tl.load(delta_ptr + offs, mask=mask, other=0.0), IS_F64)
    if HAS_BIAS:
        x = x + bias
    if SOFTPLUS:
        dt = _softplus(x)
    else:
        dt = x
    dt = tl.where(mask, dt, 0.0)
    return x, dt


# ----------------------------------------------------------------------------------
# forward
# ----------------------------------------------------------------------------------

@triton.jit
def _selective_scan_fwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, h0_ptr,
    out_ptr, last_ptr, tmap_ptr,
    Dm, L, N, dpg_b, dpg_c, Du,
    sBb, sBg, sBn, sBt,
    sCb, sCg, sCn, sCt,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr,
    HAS_H0: tl.constexpr, SOFTPLUS: tl.constexpr, IS_F64: tl.constexpr,
    CROSS: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)  # = b * Dm + d
    b = pid // Dm
    d = pid % Dm
    row = pid * L  # start of (b, d, :) in the contiguous (Bt, Dm, L) tensors
    # CROSS (SS2D): channel d = g * Du + dd scans a (Bt, Du, L) map u in the order
    # tmap[g, :]; everything is read at, and the output added to, position tmap[g, t].
    # Four programs add to each output element: out must start zeroed.
    urow = row
    if CROSS:
        urow = (b * Du + d % Du) * L

    offs_n = tl.arange(0, BLOCK_N)
    mn = offs_n < N
    cols = tl.arange(0, BLOCK_L)

    A = _cvt(tl.load(A_ptr + d * N + offs_n, mask=mn, other=0.0), IS_F64)
    B_base = B_ptr + b * sBb + (d // dpg_b) * sBg + offs_n[:, None] * sBn
    C_base = C_ptr + b * sCb + (d // dpg_c) * sCg + offs_n[:, None] * sCn

    bias = 0.0
    if HAS_BIAS:
        bias = _cvt(tl.load(bias_ptr + d), IS_F64)
    Dd = 0.0
    if HAS_D:
        Dd = _cvt(tl.load(D_ptr + d), IS_F64)
    if HAS_H0:
        h = _cvt(tl.load(h0_ptr + pid * N + offs_n, mask=mn, other=0.0), IS_F64)
    else:
        h = _cvt(tl.zeros([BLOCK_N], dtype=tl.float32), IS_F64)

    for t0 in range(0, L, BLOCK_L):
        t = t0 + cols
        mt = t < L
        m2 = mn[:, None] & mt[None, :]
        if CROSS:
            pos = tl.load(tmap_ptr + (d // Du) * L + t, mask=mt, other=0).to(tl.int64)
        else:
            pos = t
        x, dt = _load_dt(delta_ptr, row + pos, mt, bias, HAS_BIAS, SOFTPLUS, IS_F64)
        uu = _cvt(tl.load(u_ptr + urow + pos, mask=mt, other=0.0), IS_F64)
        Bv = _cvt(tl.load(B_base + pos[None, :] * sBt, mask=m2, other=0.0), IS_F64)
        # padding (t >= L or n >= N) gives a = exp(0) = 1, b = 0: the identity step
        a = tl.exp(dt[None, :] * A[:, None])
        bb = Bv * (dt * uu)[None, :]
        P, S = tl.associative_scan((a, bb), axis=1, combine_fn=_affine_combine)
        hs = P * h[:, None] + S
        Cv = _cvt(tl.load(C_base + pos[None, :] * sCt, mask=m2, other=0.0), IS_F64)
        y = tl.sum(Cv * hs, axis=0)
        if HAS_D:
            y = y + Dd * uu
        if HAS_Z:
            zz = _cvt(tl.load(z_ptr + row + t, mask=mt, other=0.0), IS_F64)
            y = y * (zz * _sigmoid(zz))
        if CROSS:
            tl.atomic_add(out_ptr + urow + pos, y, mask=mt)
        else:
            tl.store(out_ptr + row + t, y, mask=mt)
        # padded steps are identities, so the last column is h at min(t0+BLOCK_L, L)-1
        h = tl.sum(tl.where(cols[None, :] == BLOCK_L - 1, hs, 0.0), axis=1)

    tl.store(last_ptr + pid * N + offs_n, h, mask=mn)


# ----------------------------------------------------------------------------------
# backward
# ----------------------------------------------------------------------------------

@triton.jit
def _selective_scan_bwd_kernel(
    dout_ptr, dlast_ptr, u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr,
    h0_ptr, dB_ptr, dC_ptr, state_ptr,
    du_ptr, ddelta_ptr, dz_ptr, dA_ptr, dD_ptr, dbias_ptr, dh0_ptr,
    Dm, L, N, n_chunks, dpg_b, dpg_c,
    sBb, sBg, sBn, sBt,
    sCb, sCg, sCn, sCt,
    sdBb, sdBg, sdBn, sdBt,
    sdCb, sdCg, sdCn, sdCt,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr,
    HAS_H0: tl.constexpr, HAS_DLAST: tl.constexpr, SOFTPLUS: tl.constexpr,
    IS_F64: tl.constexpr, DB_T_CONST: tl.constexpr, DC_T_CONST: tl.constexpr,
    REVERSE_SCAN: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)  # = b * Dm + d
    b = pid // Dm
    d = pid % Dm
    row = pid * L

    offs_n = tl.arange(0, BLOCK_N)
    mn = offs_n < N
    cols = tl.arange(0, BLOCK_L)

    A = _cvt(tl.load(A_ptr + d * N + offs_n, mask=mn, other=0.0), IS_F64)
    gb = d // dpg_b
    gc = d // dpg_c
    B_base = B_ptr + b * sBb + gb * sBg + offs_n[:, None] * sBn
    C_base = C_ptr + b * sCb + gc * sCg + offs_n[:, None] * sCn
    dB_base = dB_ptr + b * sdBb + gb * sdBg + offs_n * sdBn
    dC_base = dC_ptr + b * sdCb + gc * sdCg + offs_n * sdCn

    bias = 0.0
    if HAS_BIAS:
        bias = _cvt(tl.load(bias_ptr + d), IS_F64)
    Dd = 0.0
    if HAS_D:
        Dd = _cvt(tl.load(D_ptr + d), IS_F64)

    # ---- sweep 1: chunk-start states h_{t0-1} into state[(b,d), c, :] ----
    st_base = state_ptr + pid * n_chunks * BLOCK_N + offs_n
    if HAS_H0:
        h = _cvt(tl.load(h0_ptr + pid * N + offs_n, mask=mn, other=0.0), IS_F64)
    else:
        h = _cvt(tl.zeros([BLOCK_N], dtype=tl.float32), IS_F64)
    tl.store(st_base, h)
    for c in range(1, n_chunks):
        t = (c - 1) * BLOCK_L + cols
        mt = t < L
        m2 = mn[:, None] & mt[None, :]
        x, dt = _load_dt(delta_ptr, row + t, mt, bias, HAS_BIAS, SOFTPLUS, IS_F64)
        uu = _cvt(tl.load(u_ptr + row + t, mask=mt, other=0.0), IS_F64)
        Bv = _cvt(tl.load(B_base + t[None, :] * sBt, mask=m2, other=0.0), IS_F64)
        a = tl.exp(dt[None, :] * A[:, None])
        bb = Bv * (dt * uu)[None, :]
        P, S = tl.associative_scan((a, bb), axis=1, combine_fn=_affine_combine)
        hs = P * h[:, None] + S
        h = tl.sum(tl.where(cols[None, :] == BLOCK_L - 1, hs, 0.0), axis=1)
        tl.store(st_base + c * BLOCK_N, h)
    tl.debug_barrier()

    # ---- sweep 2: chunks from last to first, adjoint carried backwards ----
    if HAS_DLAST:
        lam = _cvt(tl.load(dlast_ptr + pid * N + offs_n, mask=mn, other=0.0), IS_F64)
    else:
        lam = _cvt(tl.zeros([BLOCK_N], dtype=tl.float32), IS_F64)
    zero_n = _cvt(tl.zeros([BLOCK_N], dtype=tl.float32), IS_F64)
    zero_l = _cvt(tl.zeros([BLOCK_L], dtype=tl.float32), IS_F64)
    dA_acc = zero_n
    dB_acc = zero_n
    dC_acc = zero_n
    dD_acc = zero_l
    dbias_acc = zero_l

    for i in range(0, n_chunks):
        c = n_chunks - 1 - i
        t0 = c * BLOCK_L
        t = t0 + cols
        mt = t < L
        m2 = mn[:, None] & mt[None, :]

        x, dt = _load_dt(delta_ptr, row + t, mt, bias, HAS_BIAS, SOFTPLUS, IS_F64)
        uu = _cvt(tl.load(u_ptr + row + t, mask=mt, other=0.0), IS_F64)
        Bv = _cvt(tl.load(B_base + t[None, :] * sBt, mask=m2, other=0.0), IS_F64)
        Cv = _cvt(tl.load(C_base + t[None, :] * sCt, mask=m2, other=0.0), IS_F64)
        a = tl.exp(dt[None, :] * A[:, None])
        dtu = dt * uu

        # h_{t-1}: scan of the steps shifted by one (identity at the chunk's first column)
        tp = t - 1
        mp = (cols > 0) & (tp < L)
        mp2 = mn[:, None] & mp[None, :]
        _xp, dtp = _load_dt(delta_ptr, row + tp, mp, bias, HAS_BIAS, SOFTPLUS, IS_F64)
        up = _cvt(tl.load(u_ptr + row + tp, mask=mp, other=0.0), IS_F64)
        Bp = _cvt(tl.load(B_base + tp[None, :] * sBt, mask=mp2, other=0.0), IS_F64)
        Pp, Sp = tl.associative_scan((tl.exp(dtp[None, :] * A[:, None]), Bp * (dtp * up)[None, :]),
                                     axis=1, combine_fn=_affine_combine)
        hc = tl.load(st_base + c * BLOCK_N)
        hprev = Pp * hc[:, None] + Sp
        hcur = a * hprev + Bv * dtu[None, :]

        dO = _cvt(tl.load(dout_ptr + row + t, mask=mt, other=0.0), IS_F64)
        if HAS_Z:
            zz = _cvt(tl.load(z_ptr + row + t, mask=mt, other=0.0), IS_F64)
            sz = _sigmoid(zz)
            g = dO * (zz * sz)
        else:
            g = dO

        # adjoint lam_t = a_{t+1} lam_{t+1} + g_t C_t; a_{t+1} := 1 for t >= L-1 so that
        # the carry entering the last chunk (dlast) reaches lam_{L-1} unchanged.
        if REVERSE_SCAN:
            tn = t + 1
            mnx = tn < L
            _xn, dtn = _load_dt(delta_ptr, row + tn, mnx, bias, HAS_BIAS, SOFTPLUS, IS_F64)
            alpha = tl.where(mnx[None, :], tl.exp(dtn[None, :] * A[:, None]), 1.0)
            beta = Cv * g[None, :]
            Pl, Sl = tl.associative_scan((alpha, beta), axis=1, combine_fn=_affine_combine,
                                         reverse=True)
            lamt = Pl * lam[:, None] + Sl
            lam = tl.sum(tl.where(cols[None, :] == 0, lamt, 0.0), axis=1)
        else:
            # column j holds time t0 + BLOCK_L - 1 - j: a forward scan runs backwards in time
            tr = t0 + BLOCK_L - 1 - cols
            mr = tr < L
            mr2 = mn[:, None] & mr[None, :]
            trn = tr + 1
            mrn = trn < L
            _xn, dtn = _load_dt(delta_ptr, row + trn, mrn, bias, HAS_BIAS, SOFTPLUS, IS_F64)
            alpha = tl.where(mrn[None, :], tl.exp(dtn[None, :] * A[:, None]), 1.0)
            Cr = _cvt(tl.load(C_base + tr[None, :] * sCt, mask=mr2, other=0.0), IS_F64)
            dOr = _cvt(tl.load(dout_ptr + row + tr, mask=mr, other=0.0), IS_F64)
            if HAS_Z:
                zr = _cvt(tl.load(z_ptr + row + tr, mask=mr, other=0.0), IS_F64)
                gr = dOr * (zr * _sigmoid(zr))
            else:
                gr = dOr
            Pl, Sl = tl.associative_scan((alpha, Cr * gr[None, :]), axis=1,
                                         combine_fn=_affine_combine)
            lam_r = Pl * lam[:, None] + Sl
            lam = tl.sum(tl.where(cols[None, :] == BLOCK_L - 1, lam_r, 0.0), axis=1)
            lamt = tl.flip(lam_r, 1)

        # ---- gradients of this chunk ----
        if HAS_Z:
            y = tl.sum(Cv * hcur, axis=0)
            if HAS_D:
                y = y + Dd * uu
            dz = dO * y * sz * (1.0 + zz * (1.0 - sz))
            tl.store(dz_ptr + row + t, dz, mask=mt)

        lamB = tl.sum(lamt * Bv, axis=0)
        du = dt * lamB
        if HAS_D:
            du = du + Dd * g
            dD_acc += tl.where(mt, g * uu, 0.0)
        tl.store(du_ptr + row + t, du, mask=mt)

        Q = lamt * hprev * a
        ddt = tl.sum(Q * A[:, None], axis=0) + uu * lamB
        dA_acc += tl.sum(Q * dt[None, :], axis=1)
        if SOFTPLUS:
            ddx = tl.where(x <= 20.0, ddt * _sigmoid(x), ddt)
        else:
            ddx = ddt
        ddx = tl.where(mt, ddx, 0.0)
        tl.store(ddelta_ptr + row + t, ddx, mask=mt)
        if HAS_BIAS:
            dbias_acc += ddx

        dBv = tl.where(m2, lamt * dtu[None, :], 0.0)
        if DB_T_CONST:
            dB_acc += tl.sum(dBv, axis=1)
        else:
            tl.atomic_add(dB_base[:, None] + t[None, :] * sdBt, dBv, mask=m2, sem="relaxed")
        dCv = tl.where(m2, hcur * g[None, :], 0.0)
        if DC_T_CONST:
            dC_acc += tl.sum(dCv, axis=1)
        else:
            tl.atomic_add(dC_base[:, None] + t[None, :] * sdCt, dCv, mask=m2, sem="relaxed")

    if DB_T_CONST:
        tl.atomic_add(dB_base, dB_acc, mask=mn, sem="relaxed")
    if DC_T_CONST:
        tl.atomic_add(dC_base, dC_acc, mask=mn, sem="relaxed")
    # per-(b, d) partials; the launcher sums them over the batch
    tl.store(dA_ptr + pid * N + offs_n, dA_acc, mask=mn)
    if HAS_D:
        tl.store(dD_ptr + pid, tl.sum(dD_acc, axis=0))
    if HAS_BIAS:
        tl.store(dbias_ptr + pid, tl.sum(dbias_acc, axis=0))
    if HAS_H0:
        # h_0 = a_0 h_{-1} + b_0  =>  dh0 = a_0 lam_0 (lam now holds lam_0)
        m0 = cols == 0
        _x0, dt0 = _load_dt(delta_ptr, row + cols, m0, bias, HAS_BIAS, SOFTPLUS, IS_F64)
        a0 = tl.exp(tl.sum(dt0, axis=0) * A)
        tl.store(dh0_ptr + pid * N + offs_n, a0 * lam, mask=mn)


# ----------------------------------------------------------------------------------
# launchers
# ----------------------------------------------------------------------------------

def _compute_dtype(u: torch.Tensor, delta: torch.Tensor) -> torch.dtype:
    # same rule as effseg.ops.selective_scan_ref.compute_dtype: fp64 iff u is fp64
    return torch.float64 if u.dtype == torch.float64 else torch.float32


def _block_n(N: int) -> int:
    return max(2, triton.next_power_of_2(N))


def _block_l(L: int, block_n: int, tile: int, max_l: int, block_l) -> int:
    if block_l is not None:
        bl = int(block_l)
        if bl < 2 or bl & (bl - 1):
            raise ValueError(f"block_l must be a power of two >= 2, got {block_l}")
        return bl
    bl = max(_MIN_BLOCK_L, min(max_l, tile // block_n))
    return max(2, min(bl, triton.next_power_of_2(max(L, 1))))


def _groups(x4: torch.Tensor, Dm: int, name: str) -> int:
    G = x4.shape[1]
    if G < 1 or Dm % G:
        raise ValueError(f"{name}: {G} groups do not divide {Dm} channels")
    return Dm // G


def _flag_ptr(x, fallback):
    return (x, True) if x is not None else (fallback, False)


def selective_scan_fwd(u, delta, A, B4, C4, D, z, delta_bias, h0, delta_softplus: bool,
                       block_l=None):
    """-> (out, last_state), out (Bt,Dm,L), last_state (Bt,Dm,N), both in compute dtype
    (fp32, or fp64 for fp64 inputs)."""
    Bt, Dm, L = u.shape
    N = A.shape[1]
    cd = _compute_dtype(u, delta)
    dev = u.device
    out = torch.empty((Bt, Dm, L), dtype=cd, device=dev)
    last = torch.empty((Bt, Dm, N), dtype=cd, device=dev)
    if Bt * Dm == 0:
        return out, last.zero_()
    if L == 0:
        last.copy_(h0 if h0 is not None else torch.zeros_like(last))
        return out, last
    u = u.contiguous()
    delta = delta.contiguous()
    A = A.contiguous()
    dpg_b = _groups(B4, Dm, "B")
    dpg_c = _groups(C4, Dm, "C")
    D, has_d = _flag_ptr(None if D is None else D.contiguous(), u)
    z, has_z = _flag_ptr(None if z is None else z.contiguous(), u)
    bias, has_bias = _flag_ptr(None if delta_bias is None else delta_bias.contiguous(), u)
    h0, has_h0 = _flag_ptr(None if h0 is None else h0.contiguous(), u)
    BN = _block_n(N)
    BL = _block_l(L, BN, _FWD_TILE, _MAX_BLOCK_L_FWD, block_l)
    _selective_scan_fwd_kernel[(Bt * Dm,)](
        u, delta, A, B4, C4, D, z, bias, h0, out, last, out,
        Dm, L, N, dpg_b, dpg_c, Dm,
        *B4.stride(), *C4.stride(),
        HAS_D=has_d, HAS_Z=has_z, HAS_BIAS=has_bias, HAS_H0=has_h0,
        SOFTPLUS=bool(delta_softplus), IS_F64=(cd == torch.float64), CROSS=False,
        BLOCK_N=BN, BLOCK_L=BL, num_warps=_NUM_WARPS,
    )
    return out, last


def cross_selective_scan_fwd(u, delta, A, B4, C4, D, delta_bias, tmap, delta_softplus: bool,
                             block_l=None):
    """SS2D's G-direction scan, merged (see effseg.ops.cross_selective_scan): u (Bt, Du, L), delta
    (Bt, G*Du, L), B4/C4 (Bt, G, N, L) any strides, tmap (G, L) int32 permutations, all
    indexed by position -> out (Bt, Du, L) in the compute dtype."""
    Bt, Du, L = u.shape
    G = tmap.shape[0]
    Dm = G * Du
    N = A.shape[1]
    cd = _compute_dtype(u, delta)
    out = torch.zeros((Bt, Du, L), dtype=cd, device=u.device)
    if Bt * Du == 0 or L == 0:
        return out
    u, delta, A = u.contiguous(), delta.contiguous(), A.contiguous()
    tmap = tmap.to(device=u.device, dtype=torch.int32).contiguous()
    last = torch.empty((Bt, Dm, N), dtype=cd, device=u.device)  # written, unused
    D, has_d = _flag_ptr(None if D is None else D.contiguous(), u)
    bias, has_bias = _flag_ptr(None if delta_bias is None else delta_bias.contiguous(), u)
    BN = _block_n(N)
    BL = _block_l(L, BN, _FWD_TILE, _MAX_BLOCK_L_FWD, block_l)
    _selective_scan_fwd_kernel[(Bt * Dm,)](
        u, delta, A, B4, C4, D, u, bias, u, out, last, tmap,
        Dm, L, N, Du, Du, Du,
        *B4.stride(), *C4.stride(),
        HAS_D=has_d, HAS_Z=False, HAS_BIAS=has_bias, HAS_H0=False,
        SOFTPLUS=bool(delta_softplus), IS_F64=(cd == torch.float64), CROSS=True,
        BLOCK_N=BN, BLOCK_L=BL, num_warps=_NUM_WARPS,
    )
    return out


def selective_scan_bwd(dout, dlast, u, delta, A, B4, C4, D, z, delta_bias, h0, delta_softplus,
                       dB4, dC4, block_l=None, use_reverse_scan: bool = False):
    """-> (du, ddelta, dA, dD, dz, dbias, dh0); dB/dC are ADDED into dB4/dC4."""
    Bt, Dm, L = u.shape
    N = A.shape[1]
    cd = _compute_dtype(u, delta)
    dev = u.device
    for name, buf in (("dB4", dB4), ("dC4", dC4)):
        if buf.dtype != cd:
            raise TypeError(f"{name} must be {cd}, got {buf.dtype}")
    du = torch.empty((Bt, Dm, L), dtype=cd, device=dev)
    ddelta = torch.empty((Bt, Dm, L), dtype=cd, device=dev)
    dz = torch.empty((Bt, Dm, L), dtype=cd, device=dev) if z is not None else None
    dA_part = torch.zeros((Bt, Dm, N), dtype=cd, device=dev)
    dD_part = torch.zeros((Bt, Dm), dtype=cd, device=dev) if D is not None else None
    dbias_part = torch.zeros((Bt, Dm), dtype=cd, device=dev) if delta_bias is not None else None
    dh0 = torch.empty((Bt, Dm, N), dtype=cd, device=dev) if h0 is not None else None
    if Bt * Dm == 0 or L == 0:
        du.zero_(); ddelta.zero_()
        if dz is not None:
            dz.zero_()
        if dh0 is not None:
            dh0.copy_(dlast if dlast is not None else torch.zeros_like(dh0))
        return (du, ddelta, dA_part.sum(0), None if dD_part is None else dD_part.sum(0), dz,
                None if dbias_part is None else dbias_part.sum(0), dh0)

    u = u.contiguous()
    delta = delta.contiguous()
    dout = dout.contiguous()
    A = A.contiguous()
    dpg_b = _groups(B4, Dm, "B")
    dpg_c = _groups(C4, Dm, "C")
    if tuple(dB4.shape) != tuple(B4.shape) or tuple(dC4.shape) != tuple(C4.shape):
        raise ValueError("dB4/dC4 must have the shapes of B4/C4")
    BN = _block_n(N)
    BL = _block_l(L, BN, _BWD_TILE, _MAX_BLOCK_L_BWD, block_l)
    n_chunks = triton.cdiv(L, BL)
    state = torch.empty((Bt * Dm, n_chunks, BN), dtype=cd, device=dev)

    Dp, has_d = _flag_ptr(None if D is None else D.contiguous(), u)
    zp, has_z = _flag_ptr(None if z is None else z.contiguous(), u)
    biasp, has_bias = _flag_ptr(None if delta_bias is None else delta_bias.contiguous(), u)
    h0p, has_h0 = _flag_ptr(None if h0 is None else h0.contiguous(), u)
    dlastp, has_dlast = _flag_ptr(None if dlast is None else dlast.contiguous(), u)
    dzp = dz if dz is not None else du
    dDp = dD_part if dD_part is not None else dA_part
    dbiasp = dbias_part if dbias_part is not None else dA_part
    dh0p = dh0 if dh0 is not None else dA_part

    _selective_scan_bwd_kernel[(Bt * Dm,)](
        dout, dlastp, u, delta, A, B4, C4, Dp, zp, biasp, h0p, dB4, dC4, state,
        du, ddelta, dzp, dA_part, dDp, dbiasp, dh0p,
        Dm, L, N, n_chunks, dpg_b, dpg_c,
        *B4.stride(), *C4.stride(), *dB4.stride(), *dC4.stride(),
        HAS_D=has_d, HAS_Z=has_z, HAS_BIAS=has_bias, HAS_H0=has_h0, HAS_DLAST=has_dlast,
        SOFTPLUS=bool(delta_softplus), IS_F64=(cd == torch.float64),
        DB_T_CONST=(dB4.stride(3) == 0 or L == 1), DC_T_CONST=(dC4.stride(3) == 0 or L == 1),
        REVERSE_SCAN=bool(use_reverse_scan),
        BLOCK_N=BN, BLOCK_L=BL, num_warps=_NUM_WARPS,
    )
    dA = dA_part.sum(0)
    dD = dD_part.sum(0) if dD_part is not None else None
    dbias = dbias_part.sum(0) if dbias_part is not None else None
    return du, ddelta, dA, dD, dz, dbias, dh0
