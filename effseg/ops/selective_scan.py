"""effseg.ops.selective_scan: the Mamba S6 selective scan as a torch custom op.

Drop-in for mamba_ssm's `selective_scan_fn` (same argument order and layouts), with
a C++ CPU kernel, a Triton CUDA kernel, a chunked tensor-op form for export, and the
sequential reference. Formula: Gu & Dao 2023 (Mamba), see selective_scan_ref.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .. import _native, _triton
from .._native import buf
from . import _lowering
from . import _validate as V
from ._backend import resolve
from ._bc import as_grouped, grad_buffer, groups_of
from .selective_scan_chunked import selective_scan_chunked
from .selective_scan_ref import compute_dtype, selective_scan_ref

BACKENDS = ("auto", "ref", "cpp", "triton", "chunked")


def _check(u, delta, A, B, C, D, z, delta_bias, initial_state, backend):
    V.choice("backend", backend, BACKENDS)
    V.tensor("u", u, dims=(3,))
    bt, dm, length = u.shape
    if bt < 1 or dm < 1 or length < 1:
        raise ValueError(f"u must be (batch, dim, seqlen) with every size >= 1, got {tuple(u.shape)}")
    V.tensor("delta", delta, dims=(3,))
    V.shape("delta", delta, u.shape, "(batch, dim, seqlen) of u")
    if isinstance(A, Tensor) and A.is_complex():
        raise TypeError("A must be real (A = -exp(A_log)); complex A is not supported")
    V.tensor("A", A, dims=(2,))
    if A.shape[0] != dm or A.shape[1] < 1:
        raise ValueError(f"A must have shape (dim, dstate) = ({dm}, N), got {tuple(A.shape)}")
    n = A.shape[1]
    for name, x in (("B", B), ("C", C)):
        V.tensor(name, x, dims=(2, 3, 4))
        if x.dim() == 2:
            V.shape(name, x, (dm, n), "(dim, dstate)")
        elif x.dim() == 3:
            V.shape(name, x, (bt, n, length), "(batch, dstate, seqlen)")
        else:
            g = x.shape[1]
            if x.shape[0] != bt or x.shape[2] != n or x.shape[3] != length or g < 1:
                raise ValueError(
                    f"{name} must have shape (batch, groups, dstate, seqlen) = "
                    f"({bt}, G, {n}, {length}), got {tuple(x.shape)}"
                )
            if dm % g:
                raise ValueError(f"{name} has {g} groups but dim D={dm} is not divisible by {g}")
    V.tensor("D", D, dims=(1,), optional=True)
    V.shape("D", D, (dm,), "(dim,)")
    V.tensor("z", z, dims=(3,), optional=True)
    V.shape("z", z, u.shape, "(batch, dim, seqlen) of u")
    V.tensor("delta_bias", delta_bias, dims=(1,), optional=True)
    V.shape("delta_bias", delta_bias, (dm,), "(dim,)")
    V.tensor("initial_state", initial_state, dims=(3,), optional=True)
    V.shape("initial_state", initial_state, (bt, dm, n), "(batch, dim, dstate)")
    V.same_device("u", u, delta=delta, A=A, B=B, C=C, D=D, z=z, delta_bias=delta_bias,
                  initial_state=initial_state)


def _check_bwd(dout, dlast, u, delta, A, B, C, D, z, delta_bias, initial_state, backend):
    """The backward op's own arguments: the forward's, plus the output gradients."""
    _check(u, delta, A, B, C, D, z, delta_bias, initial_state, backend)
    bt, dm, _ = u.shape
    V.tensor("dout", dout, dims=(3,))
    V.shape("dout", dout, u.shape, "(batch, dim, seqlen) of u")
    V.tensor("dlast", dlast, dims=(3,))
    V.shape("dlast", dlast, (bt, dm, A.shape[1]), "(batch, dim, dstate)")
    V.same_device("u", u, dout=dout, dlast=dlast)


def _resolve(backend: str, device: torch.device) -> str:
    return resolve(backend, device, fallback="chunked")


# ---- C++ backend ---------------------------------------------------------------------
# The kernel reads B/C as (batch, group, n, t) with element strides, the state dim
# contiguous (it vectorises over n), and one group count for both.

def _common_groups(B: Tensor, C: Tensor, dm: int) -> int:
    gb, gc = groups_of(B, dm), groups_of(C, dm)
    if gb == gc or gc == 1:
        return gb
    if gb == 1:
        return gc
    return dm  # two different groupings: the grouped one is expanded per channel


def _cpp_bc(x: Tensor, g: int, bt: int, dm: int, length: int, cd: torch.dtype):
    """(kept-alive tensor, strides (sb, sg, sn, st)) of B or C for a kernel with g groups."""
    n = x.shape[1] if x.dim() == 2 else x.shape[-2]
    if x.dim() == 2:
        return x.to(cd).contiguous(), (0, n, 1, 0)
    if x.dim() == 3:
        return x.to(cd).transpose(1, 2).contiguous(), (length * n, 0, 1, n)
    if x.shape[1] != g:
        x = x.repeat_interleave(dm // x.shape[1], dim=1)
    return x.to(cd).transpose(2, 3).contiguous(), (g * length * n, length * n, 1, n)


def _cpp_grad(x: Tensor, g: int, bt: int, dm: int, length: int, cd: torch.dtype):
    """Zeroed gradient buffer for B or C: (buffer, strides, finish) with finish(buffer) -> grad."""
    if x.dim() == 2:
        return torch.zeros(x.shape, dtype=cd), (0, x.shape[1], 1, 0), lambda b: b
    n = x.shape[-2]
    if x.dim() == 3:
        return torch.zeros(bt, length, n, dtype=cd), (length * n, 0, 1, n), lambda b: b.transpose(1, 2)
    gx = x.shape[1]
    buf = torch.zeros(bt, g, length, n, dtype=cd)
    if gx == g:
        return buf, (g * length * n, length * n, 1, n), lambda b: b.transpose(2, 3)
    return buf, (g * length * n, length * n, 1, n), (
        lambda b: b.view(bt, gx, g // gx, length, n).sum(2).transpose(2, 3)
    )


def _c(x: Optional[Tensor], cd: torch.dtype) -> Optional[Tensor]:
    return None if x is None else x.to(cd).contiguous()


def _cpp_prepare(u, delta, A, B, C, D, z, delta_bias, h0):
    cd = compute_dtype(u)
    bt, dm, length = u.shape
    g = _common_groups(B, C, dm)
    Bk, bs = _cpp_bc(B, g, bt, dm, length, cd)
    Ck, cs = _cpp_bc(C, g, bt, dm, length, cd)
    ins = [_c(t, cd) for t in (u, delta, A, D, z, delta_bias, h0)]
    dims = (bt, dm, length, A.shape[1], g)
    return cd, dims, (Bk, bs, Ck, cs), ins


def _cpp_fwd(u, delta, A, B, C, D, z, delta_bias, h0, softplus):
    cd, dims, (Bk, bs, Ck, cs), (uc, dc, Ac, Dc, zc, bc, hc) = _cpp_prepare(
        u, delta, A, B, C, D, z, delta_bias, h0)
    bt, dm, length, n, _ = dims
    out = torch.empty(bt, dm, length, dtype=cd)
    last = torch.empty(bt, dm, n, dtype=cd)
    ok = _native.require().selective_scan_fwd(
        str(cd).replace("torch.", ""), *dims,
        buf(uc), buf(dc), buf(Ac), buf(Bk), bs, buf(Ck), cs,
        buf(Dc), buf(zc), buf(bc), buf(hc), bool(softplus), buf(out), buf(last),
    )
    V.kernel_finite("delta", ok)
    return out, last


def _cpp_bwd(dout, dlast, u, delta, A, B, C, D, z, delta_bias, h0, softplus):
    cd, dims, (Bk, bs, Ck, cs), (uc, dc, Ac, Dc, zc, bc, hc) = _cpp_prepare(
        u, delta, A, B, C, D, z, delta_bias, h0)
    bt, dm, length, n, g = dims
    go, gl = _c(dout, cd), _c(dlast, cd)
    du, ddelta = torch.empty_like(uc), torch.empty_like(uc)
    dA = torch.empty(bt, dm, n, dtype=cd)
    dBb, dbs, fin_b = _cpp_grad(B, g, bt, dm, length, cd)
    dCb, dcs, fin_c = _cpp_grad(C, g, bt, dm, length, cd)
    dD = torch.empty(bt, dm, dtype=cd) if D is not None else None
    dz = torch.empty_like(uc) if z is not None else None
    dbias = torch.empty(bt, dm, dtype=cd) if delta_bias is not None else None
    dh0 = torch.empty(bt, dm, n, dtype=cd) if h0 is not None else None
    _native.require().selective_scan_bwd(
        str(cd).replace("torch.", ""), *dims,
        buf(uc), buf(dc), buf(Ac), buf(Bk), bs, buf(Ck), cs,
        buf(Dc), buf(zc), buf(bc), buf(hc), bool(softplus),
        buf(go), buf(gl), buf(du), buf(ddelta), buf(dA),
        buf(dBb), dbs, buf(dCb), dcs, buf(dD), buf(dz), buf(dbias), buf(dh0),
    )
    return (du, ddelta, dA.sum(0), fin_b(dBb), fin_c(dCb),
            None if dD is None else dD.sum(0), dz,
            None if dbias is None else dbias.sum(0), dh0)


# ---- Triton backend ------------------------------------------------------------------

def _triton_fwd(u, delta, A, B, C, D, z, delta_bias, h0, softplus):
    bt, dm, length = u.shape
    K = _triton.load("selective_scan")
    return K.selective_scan_fwd(
        u.contiguous(), delta.contiguous(), A.contiguous(),
        as_grouped(B, bt, dm, length), as_grouped(C, bt, dm, length),
        D, None if z is None else z.contiguous(), delta_bias, h0, bool(softplus))


def _triton_bwd(dout, dlast, u, delta, A, B, C, D, z, delta_bias, h0, softplus):
    bt, dm, length = u.shape
    cd = compute_dtype(u)
    dB, dB4 = grad_buffer(B, bt, dm, length, cd)
    dC, dC4 = grad_buffer(C, bt, dm, length, cd)
    K = _triton.load("selective_scan")
    du, ddelta, dA, dD, dz, dbias, dh0 = K.selective_scan_bwd(
        dout.contiguous(), dlast, u.contiguous(), delta.contiguous(), A.contiguous(),
        as_grouped(B, bt, dm, length), as_grouped(C, bt, dm, length),
        D, None if z is None else z.contiguous(), delta_bias, h0, bool(softplus), dB4, dC4)
    return du, ddelta, dA, dB, dC, dD, dz, dbias, dh0


# ---- ref / chunked: backward by autograd through the tensor-op form -------------------

_TORCH_FORMS = {"ref": selective_scan_ref, "chunked": selective_scan_chunked}


def _torch_fwd(form, u, delta, A, B, C, D, z, delta_bias, h0, softplus):
    with torch.no_grad():
        return _TORCH_FORMS[form](u, delta, A, B, C, D, z, delta_bias, softplus, True,
                                  initial_state=h0)


def _torch_bwd(form, dout, dlast, *inputs_and_flag):
    # Autograd is switched off inside a custom op's kernel; torch.func's vjp runs its
    # own transform level, so it still differentiates the tensor-op form here.
    *inputs, softplus = inputs_and_flag
    present = [i for i, x in enumerate(inputs) if x is not None]

    def f(*xs):
        full = list(inputs)
        for i, x in zip(present, xs):
            full[i] = x
        extra = {"checkpoint_chunks": False} if form == "chunked" else {}
        return _TORCH_FORMS[form](*full[:8], softplus, True, initial_state=full[8], **extra)

    _, pullback = torch.func.vjp(f, *(inputs[i] for i in present))
    grads = dict(zip(present, pullback((dout, dlast))))
    return tuple(grads.get(i) for i in range(len(inputs)))


# ---- the custom op -------------------------------------------------------------------

def _empty_like_none(x: Optional[Tensor], ref: Tensor) -> Tensor:
    return ref.new_empty(0) if x is None else x


@torch.library.custom_op("effseg::selective_scan", mutates_args=())
def _selective_scan_op(
    u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
    D: Optional[Tensor], z: Optional[Tensor], delta_bias: Optional[Tensor],
    initial_state: Optional[Tensor], delta_softplus: bool, backend: str,
) -> tuple[Tensor, Tensor]:
    # torch.ops.effseg.selective_scan is callable directly (and is what traced graphs
    # call), so the op checks its arguments itself; the kernels trust them.
    _check(u, delta, A, B, C, D, z, delta_bias, initial_state, backend)
    be = _resolve(backend, u.device)
    args = (u, delta, A, B, C, D, z, delta_bias, initial_state, delta_softplus)
    if be == "cpp":
        out, last = _cpp_fwd(*args)
    elif be == "triton":
        out, last = _triton_fwd(*args)
    else:
        out, last = _torch_fwd(be, *args)
    return out.to(u.dtype), last


@_selective_scan_op.register_fake
def _(u, delta, A, B, C, D, z, delta_bias, initial_state, delta_softplus, backend):
    _check(u, delta, A, B, C, D, z, delta_bias, initial_state, backend)
    bt, dm, _ = u.shape
    return torch.empty_like(u), u.new_empty((bt, dm, A.shape[1]), dtype=compute_dtype(u))


@torch.library.custom_op("effseg::selective_scan_bwd", mutates_args=())
def _selective_scan_bwd_op(
    dout: Tensor, dlast: Tensor, u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
    D: Optional[Tensor], z: Optional[Tensor], delta_bias: Optional[Tensor],
    initial_state: Optional[Tensor], delta_softplus: bool, backend: str,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    _check_bwd(dout, dlast, u, delta, A, B, C, D, z, delta_bias, initial_state, backend)
    be = _resolve(backend, u.device)
    ins = (u, delta, A, B, C, D, z, delta_bias, initial_state)
    if be == "cpp":
        grads = _cpp_bwd(dout, dlast, *ins, delta_softplus)
    elif be == "triton":
        grads = _triton_bwd(dout, dlast, *ins, delta_softplus)
    else:
        grads = _torch_bwd(be, dout, dlast, *ins, delta_softplus)
    # Absent inputs get empty gradients (custom ops cannot return None); each present
    # one comes back in its input's dtype.
    return tuple(
        u.new_empty(0) if x is None else g.to(x.dtype).contiguous()
        for x, g in zip(ins, grads)
    )


@_selective_scan_bwd_op.register_fake
def _(dout, dlast, u, delta, A, B, C, D, z, delta_bias, initial_state, delta_softplus, backend):
    ins = (u, delta, A, B, C, D, z, delta_bias, initial_state)
    return tuple(u.new_empty(0) if x is None else torch.empty_like(x) for x in ins)


def _setup_context(ctx, inputs, output):
    *tensors, delta_softplus, backend = inputs
    ctx.save_for_backward(*tensors)
    ctx.delta_softplus = delta_softplus
    ctx.backend = backend


def _backward(ctx, dout, dlast):
    ins = ctx.saved_tensors
    u, A = ins[0], ins[2]
    if dout is None:
        dout = torch.zeros_like(u)
    if dlast is None:
        dlast = u.new_zeros((u.shape[0], u.shape[1], A.shape[1]), dtype=compute_dtype(u))
    grads = _selective_scan_bwd_op(dout, dlast, *ins, ctx.delta_softplus, ctx.backend)
    return (*(None if x is None else g for x, g in zip(ins, grads)), None, None)


torch.library.register_autograd(
    "effseg::selective_scan", _backward, setup_context=_setup_context)


def selective_scan(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Optional[Tensor] = None,
    z: Optional[Tensor] = None,
    delta_bias: Optional[Tensor] = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
    *,
    initial_state: Optional[Tensor] = None,
    backend: str = "auto",
):
    """Mamba S6 selective scan, a drop-in for mamba_ssm's ``selective_scan_fn``.

    u, delta, z: (B, D, L); A: (D, N) real; B, C: (D, N) constant, (B, N, L) varying
    or (B, G, N, L) grouped (channel d reads group d // (D // G)); D, delta_bias: (D,);
    initial_state: (B, D, N). The state is fp32 whatever the input dtype (fp64 for
    fp64 inputs). Returns y in u's dtype, or (y, last_state) when return_last_state.

    backend: "auto" (C++ on CPU, Triton on CUDA), "cpp", "triton", "chunked" (plain
    tensor ops; what ONNX export uses) or "ref" (the sequential reference).
    """
    _check(u, delta, A, B, C, D, z, delta_bias, initial_state, backend)
    # Resolved here to fail early, naming the backend, outside the op. The C++ kernel
    # checks delta as it reads it; the other backends need the separate pass.
    if not torch.compiler.is_compiling() and _resolve(backend, u.device) != "cpp":
        V.finite("delta", delta)
    if backend in _TORCH_FORMS:
        return _TORCH_FORMS[backend](u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                     return_last_state, initial_state=initial_state)
    out, last = _selective_scan_op(u, delta, A, B, C, D, z, delta_bias, initial_state,
                                   bool(delta_softplus), backend)
    return (out, last) if return_last_state else out


def _onnx_lowering(u, delta, A, B, C, D, z, delta_bias, initial_state, delta_softplus, backend):
    """All chunks at once (CumSum/Exp/MatMul/Pad/Slice): no Loop or Scan node for TensorRT,
    and a graph whose size does not grow with L."""
    from .selective_scan_parallel import selective_scan_parallel

    return selective_scan_parallel(u, delta, A, B, C, D, z, delta_bias, delta_softplus, True,
                                   initial_state=initial_state)


_lowering.register(torch.ops.effseg.selective_scan.default, _onnx_lowering)
