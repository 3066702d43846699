"""VMamba's cross-scan / cross-merge (SS2D) and the fused cross selective scan.

SS2D (Liu et al., "VMamba: Visual State Space Model", 2024) scans a (H, W) map in four
orders (row-major, column-major, and both reversed) with one selective scan each
(G = 4 groups of channels) and sums the four outputs back in spatial order:

    xs = cross_scan_ref(x)                          # (B, 4, D, L): four copies of x
    ys = selective_scan(xs, dts, A, Bs, Cs, ...)    # (B, 4, D, L): four outputs
    y  = cross_merge_ref(ys, H, W)                  # (B, D, L)

`cross_selective_scan` computes the same y without either four-copy tensor: the C++
kernel follows the four traversal orders through an index map (`cross_scan_maps`),
gathering u, delta, B and C by position and adding each output at its position. Its
inputs are all in spatial order; the per-position projections that produce delta, B
and C commute with the re-ordering, so they are computed once on x (see effseg.nn.SS2D).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional

import torch
from torch import Tensor

from .. import _native, _triton
from .._native import buf, strided_buf
from . import _lowering
from . import _validate as V
from ._backend import check_explicit
from .selective_scan import _resolve, selective_scan
from .selective_scan_parallel import selective_scan_parallel
from .selective_scan_ref import compute_dtype

K_DIRECTIONS = 4


def cross_scan_ref(x: Tensor) -> Tensor:
    """(B, D, H, W) -> (B, 4, D, H*W): row-major, column-major, and both reversed."""
    B, D, H, W = x.shape
    hw = torch.stack([x.reshape(B, D, H * W), x.transpose(2, 3).reshape(B, D, H * W)], dim=1)
    return torch.cat([hw, hw.flip(-1)], dim=1)


def cross_merge_ref(ys: Tensor, H: int, W: int) -> Tensor:
    """(B, 4, D, H*W) in the four scan orders -> (B, D, H*W) summed in row-major order."""
    B, K, D, L = ys.shape
    if K != K_DIRECTIONS or L != H * W:
        raise ValueError(f"ys must be (B, 4, D, H*W={H * W}), got {tuple(ys.shape)}")
    y = ys[:, 0] + ys[:, 2].flip(-1)
    col = ys[:, 1] + ys[:, 3].flip(-1)
    return y + col.reshape(B, D, W, H).transpose(2, 3).reshape(B, D, L)


def _build_maps(H: int, W: int) -> Tensor:
    idx = torch.arange(H * W, dtype=torch.int32).reshape(H, W)
    row, col = idx.reshape(-1), idx.t().reshape(-1)
    return torch.stack([row, col, row.flip(0), col.flip(0)]).contiguous()


_cached_maps = lru_cache(maxsize=64)(_build_maps)


def _maps(H: int, W: int, device=None) -> Tensor:
    """cross_scan_maps without the copy: the cached tensor itself, for effseg's own calls
    (which only read it)."""
    # Traced graphs (torch.compile / export) build the map as graph constants instead.
    if torch.compiler.is_compiling():
        m = _build_maps(H, W)  # H, W may be symbolic (dynamic-shape export): no int()
    else:
        m = _cached_maps(int(H), int(W))
    return m if device is None else m.to(device)


def cross_scan_maps(H: int, W: int, device=None) -> Tensor:
    """(4, H*W) int32: step t of scan g visits row-major position maps[g, t].

    A fresh tensor per call: the cached one behind it is shared by every later scan,
    so a caller writing into it must not reach it."""
    m = _maps(H, W)
    return m.clone() if device is None else m.to(device, copy=True)


def _check(u, delta, A, B, C, D, delta_bias, H, W):
    V.tensor("u", u, dims=(3, 4))
    if u.dim() == 4 and (u.shape[2], u.shape[3]) != (H, W):
        raise ValueError(f"u is (B, D, H, W) = {tuple(u.shape)} but H, W = {H}, {W}")
    bt, du, L = u.shape[0], u.shape[1], H * W
    if u.dim() == 3 and u.shape[2] != L:
        raise ValueError(f"u must be (B, D, H*W={L}) or (B, D, H, W), got {tuple(u.shape)}")
    for name, t in (("delta", delta), ("A", A), ("B", B), ("C", C)):
        V.tensor(name, t)
    V.shape("delta", delta, (bt, K_DIRECTIONS * du, L), "(batch, 4*D, H*W) in row-major order")
    n = A.shape[-1] if A.dim() == 2 else -1
    V.shape("A", A, (K_DIRECTIONS * du, n), "(4*D, d_state)")
    for name, t in (("B", B), ("C", C)):
        V.shape(name, t, (bt, K_DIRECTIONS, n, L), "(batch, 4, d_state, H*W) in row-major order")
    for name, t in (("D", D), ("delta_bias", delta_bias)):
        if t is not None:
            V.tensor(name, t)
            V.shape(name, t, (K_DIRECTIONS * du,), "(4*D,)")
    V.same_device("u", u, delta=delta, A=A, B=B, C=C, D=D, delta_bias=delta_bias)


def _check_op(u, delta, A, B, C, D, delta_bias, tmap, backend):
    """The fused op's own arguments, as a direct torch.ops.effseg.cross_selective_scan
    call passes them: u (B, D, L) and tmap (4, L) integer traversal orders."""
    V.choice("backend", backend, ("cpp", "triton"))
    V.tensor("u", u, dims=(3,))
    L = u.shape[2]
    _check(u, delta, A, B, C, D, delta_bias, 1, L)
    if not isinstance(tmap, Tensor) or tmap.is_floating_point() or tmap.is_complex() or tmap.dtype == torch.bool:
        raise TypeError(f"tmap must be an integer torch.Tensor, got {getattr(tmap, 'dtype', type(tmap).__name__)}")
    V.shape("tmap", tmap, (K_DIRECTIONS, L), "(4, H*W)")
    V.same_device("u", u, tmap=tmap)
    check_explicit(backend, u.device)


def _check_maps(tmap: Tensor) -> None:
    # The C++ kernel checks its map itself; the Triton one would index out of bounds or
    # leave output positions unwritten, so its map is checked here (eager calls only).
    if torch.compiler.is_compiling() or tmap.device.type == "meta":
        return
    steps = torch.arange(tmap.shape[1], device=tmap.device, dtype=tmap.dtype)
    if not torch.equal(tmap.sort(dim=1).values, steps.expand_as(tmap)):
        raise ValueError("tmap rows must be permutations of 0..H*W-1 (see cross_scan_maps)")


def _materialised(u, delta, A, B, C, D, delta_bias, delta_softplus, H, W, backend):
    """The reference composition: four re-ordered copies, one grouped scan, a merge."""
    bt, du, L = u.shape[0], u.shape[1], H * W
    maps = _maps(H, W, u.device).long()
    xs = cross_scan_ref(u.reshape(bt, du, H, W)).reshape(bt, K_DIRECTIONS * du, L)
    dl = delta.reshape(bt, K_DIRECTIONS, du, L)
    dl = torch.stack([dl[:, g].index_select(-1, maps[g]) for g in range(K_DIRECTIONS)], 1)
    Bs = torch.stack([B[:, g].index_select(-1, maps[g]) for g in range(K_DIRECTIONS)], 1)
    Cs = torch.stack([C[:, g].index_select(-1, maps[g]) for g in range(K_DIRECTIONS)], 1)
    ys = selective_scan(xs, dl.reshape(bt, K_DIRECTIONS * du, L), A, Bs, Cs, D, None, delta_bias,
                        delta_softplus, backend=backend)
    return cross_merge_ref(ys.reshape(bt, K_DIRECTIONS, du, L), H, W)


def cross_selective_scan_ref(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=True,
                             *, H: int, W: int) -> Tensor:
    """The definition: cross_scan_ref, selective_scan_ref, cross_merge_ref."""
    return _materialised(u, delta, A, B, C, D, delta_bias, delta_softplus, H, W, "ref")


@torch.library.custom_op("effseg::cross_selective_scan", mutates_args=())
def _cross_op(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor],
              delta_bias: Optional[Tensor], tmap: Tensor, delta_softplus: bool,
              backend: str = "cpp") -> Tensor:
    # Callable directly as torch.ops.effseg.cross_selective_scan: the op checks its
    # arguments itself, the kernels trust them.
    _check_op(u, delta, A, B, C, D, delta_bias, tmap, backend)
    cd = compute_dtype(u)
    if backend == "triton":
        _check_maps(tmap)
        K = _triton.load("selective_scan")
        out = K.cross_selective_scan_fwd(u, delta, A, B.to(cd), C.to(cd), D, delta_bias, tmap,
                                         bool(delta_softplus))
        return out.to(u.dtype)
    bt, du, L = u.shape
    uc, dc, Ac = (t.to(cd).contiguous() for t in (u, delta, A))
    Bc, Cc = B.to(cd), C.to(cd)  # any strides: the kernel gathers B / C by position
    Dc = None if D is None else D.to(cd).contiguous()
    bc = None if delta_bias is None else delta_bias.to(cd).contiguous()
    tm = tmap.to(torch.int32).contiguous()
    out = torch.empty(bt, du, L, dtype=cd)
    ok = _native.require().cross_selective_scan_fwd(
        str(cd).replace("torch.", ""), bt, K_DIRECTIONS * du, L, A.shape[1], K_DIRECTIONS,
        buf(uc), buf(dc), buf(Ac), strided_buf(Bc), tuple(Bc.stride()), strided_buf(Cc),
        tuple(Cc.stride()), buf(Dc), buf(bc), bool(delta_softplus), buf(tm), buf(out))
    V.kernel_finite("delta", ok)
    return out.to(u.dtype)


@_cross_op.register_fake
def _(u, delta, A, B, C, D, delta_bias, tmap, delta_softplus, backend="cpp"):
    _check_op(u, delta, A, B, C, D, delta_bias, tmap, backend)
    return u.new_empty(u.shape)


def _onnx_lowering(u, delta, A, B, C, D, delta_bias, tmap, delta_softplus, backend="cpp"):
    """Gathers by the maps, the chunked scan, and the merge as gathers by inverse maps."""
    bt, du, L = u.shape
    K = K_DIRECTIONS
    maps = tmap.long()
    xs = torch.cat([u.index_select(-1, maps[g]) for g in range(K)], 1)
    dl = delta.reshape(bt, K, du, L)
    dl = torch.cat([dl[:, g].index_select(-1, maps[g]) for g in range(K)], 1)
    Bs = torch.stack([B[:, g].index_select(-1, maps[g]) for g in range(K)], 1)
    Cs = torch.stack([C[:, g].index_select(-1, maps[g]) for g in range(K)], 1)
    ys = selective_scan_parallel(xs, dl, A, Bs, Cs, D, None, delta_bias, delta_softplus)
    ys = ys.reshape(bt, K, du, L)
    steps = torch.arange(L, device=u.device)
    out = None
    for g in range(K):
        inv = torch.zeros_like(steps).scatter(0, maps[g], steps)
        part = ys[:, g].index_select(-1, inv)
        out = part if out is None else out + part
    return out


_lowering.register(torch.ops.effseg.cross_selective_scan.default, _onnx_lowering)


def _needs_grad(*ts) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in ts)


def cross_selective_scan(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
                         D: Optional[Tensor] = None, delta_bias: Optional[Tensor] = None,
                         delta_softplus: bool = True, *, H: int, W: int,
                         backend: str = "auto") -> Tensor:
    """SS2D's four-direction selective scan, merged: (B, D, H*W) in row-major order.

    u: (B, D, H, W) or (B, D, H*W); delta: (B, 4*D, H*W); B, C: (B, 4, d_state, H*W), any
    strides; A: (4*D, d_state); D, delta_bias: (4*D,). Everything is indexed by row-major
    position; channel g*D + d belongs to scan g (0: row-major, 1: column-major, 2 and 3:
    the same reversed), as in VMamba. Equals
    cross_merge_ref(selective_scan(cross_scan_ref(u), delta and B/C re-ordered...)).

    Without gradients the fused kernels run (no four-fold copies): C++ for CPU tensors
    (backend "auto" or "cpp"), Triton for CUDA tensors (backend "auto" or "triton"). With
    gradients, or for backend "chunked"/"ref", the re-ordered copies are built and the
    grouped selective_scan (with its backward) runs on that backend.
    """
    if not torch.compiler.is_compiling():
        H, W = int(H), int(W)
    if H < 1 or W < 1:
        raise ValueError(f"H and W must be >= 1, got H={H}, W={W}")
    _check(u, delta, A, B, C, D, delta_bias, H, W)
    V.choice("backend", backend, ("auto", "cpp", "triton", "chunked", "ref"))
    run = _resolve(backend, u.device)
    if run != "cpp":
        V.finite("delta", delta)  # the C++ kernels check delta as they read it
    bt, du = u.shape[0], u.shape[1]
    u3 = u.reshape(bt, du, H * W)
    if run in ("cpp", "triton") and not _needs_grad(u, delta, A, B, C, D, delta_bias):
        return _cross_op(u3, delta, A, B, C, D, delta_bias, _maps(H, W, u.device),
                         bool(delta_softplus), run)
    return _materialised(u3, delta, A, B, C, D, delta_bias, delta_softplus, H, W, run)
