"""effseg.ops.linear_attention: GeoSeg-style global linear attention as a torch custom op.

q, k (B, Ck, N) and v (B, Cv, N) -> (B, Cv, N): ABCNet / A2-FPN / BANet's Taylor
attention (kind="taylor") or MANet's softplus kernel attention (kind="softplus"); the
formulas are in linear_attention_ref. Backends: a C++ CPU kernel (two passes over the
data forward, two backward, fp32 accumulation), a Triton kernel for CUDA, and the
reference. ONNX export lowers to MatMul / ReduceSum / elementwise ops (no Einsum).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .. import _native, _triton
from .._native import buf
from . import _lowering
from . import _validate as V
from ._backend import must_dispatch, resolve
from .linear_attention_ref import (
    KINDS,
    compute_dtype,
    linear_attention_ref,
    summary_ref,
)

BACKENDS = ("auto", "ref", "cpp", "triton")


def _check(q, k, v, kind, eps, backend):
    V.choice("kind", kind, KINDS)
    V.choice("backend", backend, BACKENDS)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)):
        raise TypeError(f"eps must be a float, got {type(eps).__name__}")
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a finite number > 0, got {eps}")
    for name, x in (("q", q), ("k", k), ("v", v)):
        V.tensor(name, x, dims=(3,))
        if min(x.shape) < 1:
            raise ValueError(f"{name} must have every size >= 1, got shape {tuple(x.shape)}")
    bt, ck, n = q.shape
    if k.shape[1] != ck:
        raise ValueError(f"k has {k.shape[1]} channels but q has {ck}; q and k must have the "
                         "same channel count Ck")
    V.shape("k", k, (bt, ck, n), "(batch, Ck, N) of q")
    if v.shape[0] != bt or v.shape[2] != n:
        raise ValueError(f"v must have shape (batch, Cv, N) = ({bt}, Cv, {n}) to match q, "
                         f"got {tuple(v.shape)}")
    for name, x in (("k", k), ("v", v)):
        if x.dtype != q.dtype:
            raise TypeError(f"{name} is {x.dtype} but q is {q.dtype}; q, k and v must share one dtype")
    V.same_device("q", q, k=k, v=v)


def _check_bwd(dout, q, k, v, out, stats, kind, eps, backend):
    """The backward op's own arguments: the forward's, its outputs and the gradient."""
    _check(q, k, v, kind, eps, backend)
    bt, ck, n = q.shape
    cv = v.shape[1]
    for name, x, want, what in (("dout", dout, (bt, cv, n), "(batch, Cv, N) of v"),
                                ("out", out, (bt, cv, n), "(batch, Cv, N) of v"),
                                ("stats", stats, (bt, cv + 1, ck + 1), "(batch, Cv + 1, Ck + 1)")):
        V.tensor(name, x, dims=(3,))
        V.shape(name, x, want, what)
    V.same_device("q", q, dout=dout, out=out, stats=stats)


def _resolve(backend: str, device: torch.device) -> str:
    return resolve(backend, device)


def _dtype_name(cd: torch.dtype) -> str:
    return str(cd).replace("torch.", "")


# ---- C++ backend ---------------------------------------------------------------------

def _cpp_fwd(q, k, v, kind, eps):
    cd = compute_dtype(q)
    qc, kc, vc = (t.to(cd).contiguous() for t in (q, k, v))
    bt, ck, n = q.shape
    cv = v.shape[1]
    out = torch.empty(bt, cv, n, dtype=cd)
    stats = torch.empty(bt, cv + 1, ck + 1, dtype=cd)
    _native.require().linear_attention_fwd(
        _dtype_name(cd), bt, ck, cv, n, kind, float(eps),
        buf(qc), buf(kc), buf(vc), buf(out), buf(stats))
    return out, stats


def _cpp_bwd(dout, q, k, v, out, stats, kind, eps):
    cd = compute_dtype(q)
    qc, kc, vc, oc, gc, sc = (t.to(cd).contiguous() for t in (q, k, v, out, dout, stats))
    bt, ck, n = q.shape
    cv = v.shape[1]
    dq, dk, dv = torch.empty_like(qc), torch.empty_like(kc), torch.empty_like(vc)
    _native.require().linear_attention_bwd(
        _dtype_name(cd), bt, ck, cv, n, kind, float(eps),
        buf(qc), buf(kc), buf(vc), buf(oc), buf(sc), buf(gc), buf(dq), buf(dk), buf(dv))
    return dq, dk, dv


# ---- Triton backend ------------------------------------------------------------------

def _triton_fwd(q, k, v, kind, eps):
    K = _triton.load("linear_attention")
    return K.linear_attention_fwd(q.contiguous(), k.contiguous(), v.contiguous(),
                                  kind == "taylor", float(eps))


def _triton_bwd(dout, q, k, v, out, stats, kind, eps):
    K = _triton.load("linear_attention")
    return K.linear_attention_bwd(dout.contiguous(), q.contiguous(), k.contiguous(),
                                  v.contiguous(), out.contiguous(), stats.contiguous(),
                                  kind == "taylor", float(eps))


# ---- ref: backward by autograd through the reference ---------------------------------

def _ref_fwd(q, k, v, kind, eps):
    with torch.no_grad():
        return linear_attention_ref(q, k, v, kind=kind, eps=eps), summary_ref(k, v, kind)


def _ref_bwd(dout, q, k, v, kind, eps):
    # Autograd is off inside a custom op's kernel; torch.func.vjp runs its own level.
    _, pullback = torch.func.vjp(
        lambda a, b, c: linear_attention_ref(a, b, c, kind=kind, eps=eps), q, k, v)
    return pullback(dout.to(q.dtype))


def _forward(be, q, k, v, kind, eps):
    if be == "cpp":
        return _cpp_fwd(q, k, v, kind, eps)
    if be == "triton":
        return _triton_fwd(q, k, v, kind, eps)
    return _ref_fwd(q, k, v, kind, eps)


# ---- the custom op -------------------------------------------------------------------

@torch.library.custom_op("effseg::linear_attention", mutates_args=())
def _linear_attention_op(q: Tensor, k: Tensor, v: Tensor, kind: str, eps: float,
                         backend: str) -> tuple[Tensor, Tensor]:
    # Callable directly as torch.ops.effseg.linear_attention (and from traced graphs):
    # the op checks its arguments itself, the kernels trust them.
    _check(q, k, v, kind, eps, backend)
    out, stats = _forward(_resolve(backend, q.device), q, k, v, kind, eps)
    return out.to(q.dtype), stats


@_linear_attention_op.register_fake
def _(q, k, v, kind, eps, backend):
    _check(q, k, v, kind, eps, backend)
    bt, ck, n = q.shape
    cv = v.shape[1]
    return q.new_empty((bt, cv, n)), q.new_empty((bt, cv + 1, ck + 1), dtype=compute_dtype(q))


@torch.library.custom_op("effseg::linear_attention_bwd", mutates_args=())
def _linear_attention_bwd_op(dout: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor,
                             stats: Tensor, kind: str, eps: float,
                             backend: str) -> tuple[Tensor, Tensor, Tensor]:
    _check_bwd(dout, q, k, v, out, stats, kind, eps, backend)
    be = _resolve(backend, q.device)
    if be == "cpp":
        grads = _cpp_bwd(dout, q, k, v, out, stats, kind, eps)
    elif be == "triton":
        grads = _triton_bwd(dout, q, k, v, out, stats, kind, eps)
    else:
        grads = _ref_bwd(dout, q, k, v, kind, eps)
    return tuple(g.to(x.dtype).contiguous() for g, x in zip(grads, (q, k, v)))


@_linear_attention_bwd_op.register_fake
def _(dout, q, k, v, out, stats, kind, eps, backend):
    return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)


def _setup_context(ctx, inputs, output):
    q, k, v, kind, eps, backend = inputs
    out, stats = output
    ctx.save_for_backward(q, k, v, out, stats)
    ctx.kind, ctx.eps, ctx.backend = kind, eps, backend


def _backward(ctx, dout, dstats):
    # stats is an internal by-product (the public function never returns it): its
    # gradient is not propagated.
    q, k, v, out, stats = ctx.saved_tensors
    if dout is None:
        return None, None, None, None, None, None
    dq, dk, dv = _linear_attention_bwd_op(dout, q, k, v, out, stats, ctx.kind, ctx.eps,
                                          ctx.backend)
    return dq, dk, dv, None, None, None


torch.library.register_autograd("effseg::linear_attention", _backward,
                                setup_context=_setup_context)


def _eager_inference(q: Tensor, k: Tensor, v: Tensor) -> bool:
    """Plain tensors, no gradient wanted, not being traced: the kernel can be called
    without the custom op's dispatcher round trip (~40 us, as long as the whole kernel
    takes at small sizes). Traced calls (FakeTensor, FX proxies, torch.compile) and
    training keep going through the op."""
    if not all(type(t) is Tensor for t in (q, k, v)) or must_dispatch():
        return False
    return not (torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad))


def linear_attention(q: Tensor, k: Tensor, v: Tensor, *, kind: str, eps: float = 1e-6,
                     backend: str = "auto") -> Tensor:
    """Global (non-causal) linear attention over N = H*W positions, GeoSeg's layout.

    q, k: (B, Ck, N); v: (B, Cv, N); one dtype (float16/bfloat16 are computed in float32,
    the result cast back). Returns (B, Cv, N).

    kind="taylor" (ABCNet / A2-FPN / BANet): q, k l2-normalised over channels (a column
    of zeros stays zero, so no NaN), out_n = (sum_j v_j + (k^ v^T)^T q^_n) /
    (N + q^_n . (sum_j k^_j + eps)). kind="softplus" (MANet PAM): q, k <- softplus,
    out_n = (k v^T)^T q_n / (q_n . (sum_j k_j + eps)). Differentiable in q, k and v.
    Softplus underflow: in float32 the C++ kernel floors softplus(q) at e^-86.5, so a
    position whose q is below -86.5 in every channel gets a finite value that is not the
    exact limit; the float32 reference underflows too (0/0 = NaN below about -104).
    float64 is exact down to about -745.

    backend: "auto" (C++ on CPU, Triton on CUDA), "cpp", "triton" or "ref" (the plain
    PyTorch definition, linear_attention_ref).
    """
    _check(q, k, v, kind, eps, backend)
    if backend == "ref":
        return linear_attention_ref(q, k, v, kind=kind, eps=eps)
    if _eager_inference(q, k, v):
        be = _resolve(backend, q.device)
        if be == "ref":
            return linear_attention_ref(q, k, v, kind=kind, eps=eps)
        out, _ = _forward(be, q, k, v, kind, float(eps))
        return out.to(q.dtype)
    if not torch.compiler.is_compiling():
        _resolve(backend, q.device)  # fail early, naming the backend, outside the op
    out, _ = _linear_attention_op(q, k, v, kind, float(eps), backend)
    return out


def _onnx_lowering(q, k, v, kind, eps, backend):
    """The reference: MatMul, ReduceSum and elementwise ops (Exp/Log/Where for softplus,
    Sqrt/Reciprocal/Where for the l2 norm); no Einsum."""
    return linear_attention_ref(q, k, v, kind=kind, eps=eps), summary_ref(k, v, kind)


_lowering.register(torch.ops.effseg.linear_attention.default, _onnx_lowering)
