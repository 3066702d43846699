"""effseg.ops.winograd_conv2d: 3 x 3, stride-1 convolution by Winograd F(4x4, 3x3).

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016): each
4 x 4 output tile of a 3 x 3 correlation is

    Y = A^T [ (G g G^T) (.) (B^T d B) ] A

for the 6 x 6 input window d, so a layer becomes an input transform V = B^T d B, 36
batched GEMMs M[ij] = U[ij] @ V[ij] over the channels (U = G g G^T, the transformed
weight, computed once: `winograd_weight`) and an output transform. That is 36 products
per tile and channel pair instead of 144: 4x fewer multiplies than direct convolution,
at the cost of extra rounding (float32 error 1e-6 to 1.5e-5 of the output's largest
value, growing slowly with the channel count; F.conv2d's is ~1e-6).

Backends: "cpp" (C++ transforms on chunks of tiles that stay in cache, torch.bmm
between them; float32 / float64), "triton" (Triton transforms over the whole tensor,
torch.bmm in float32; float32 / float16 / bfloat16, accumulated in float32) and "ref"
(F.conv2d, the definition). The backward is PyTorch's convolution backward.
"""
from __future__ import annotations

import contextvars
import threading
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import _native, _triton
from .._native import buf
from . import _lowering
from . import _validate as V
from ._backend import check_explicit, must_dispatch

BACKENDS = ("auto", "ref", "cpp", "triton")
CPP_DTYPES = (torch.float32, torch.float64)
TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_HALF = (torch.float16, torch.bfloat16)
_DTYPE_NAMES = {torch.float32: "float32", torch.float64: "float64",
                torch.float16: "float16", torch.bfloat16: "bfloat16"}

# G of F(4x4, 3x3) (interpolation points 0, +-1, +-2, infinity); B^T and A^T are in
# the kernels (csrc/winograd_conv2d/winograd_conv2d.cpp, kernels/winograd_conv2d.py).
_G = ((1 / 4, 0.0, 0.0),
      (-1 / 6, -1 / 6, -1 / 6),
      (-1 / 6, 1 / 6, -1 / 6),
      (1 / 24, 1 / 12, 1 / 6),
      (1 / 24, -1 / 12, 1 / 6),
      (0.0, 0.0, 1.0))

# Bytes of one chunk's V and M together (the cpp backend): small enough to stay in
# cache (L3) between the transforms and the GEMMs, large enough that the GEMMs (which
# read all of U once per chunk, and run faster on wider V) and the per-chunk call
# overhead stay efficient. Tuned on the benchmark layers (2-core Zen 3, 1 MB L2 per
# core, 32 MB L3; one thread, CPU time): 1 MB chunks were 5-20% slower than 4-8 MB,
# 12 MB slower again for the large maps.
CHUNK_BYTES = 6 << 20
# Tiles per chunk are a multiple of this (whole SIMD vectors in the GEMMs' columns).
CHUNK_ALIGN = 16

IntPair = int | Sequence[int]

# The backend an eager call asked for, seen by the custom op's implementation: the op's
# schema has no backend argument (a traced or exported graph runs "auto").
_BACKEND: contextvars.ContextVar[str] = contextvars.ContextVar("winograd_backend", default="auto")


def winograd_weight(weight: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """U = G g G^T for weight (K, C, 3, 3): (36, K, C), element [i*6 + j, k, c].

    Computed in float64 and cast to weight's dtype (or `dtype`), contiguous. A one-off
    per weight: pass it as winograd_conv2d(..., weight_t=U) to skip recomputing it per
    call. For float16 / bfloat16 weights, dtype=torch.float32 keeps U exact to float32:
    U rounded to float16 costs ~5e-3 of the output's scale (the output transform
    amplifies its rounding), U in float32 ~3e-4 (the Triton backend takes either).
    """
    V.tensor("weight", weight, dims=(4,))
    if dtype is not None and dtype not in V.FLOAT_DTYPES:
        raise TypeError(f"dtype must be a floating dtype, got {dtype}")
    if tuple(weight.shape[2:]) != (3, 3):
        raise ValueError(f"weight must have shape (out_channels, in_channels, 3, 3), got "
                         f"{tuple(weight.shape)}")
    K, C = weight.shape[0], weight.shape[1]
    out_dtype = dtype or weight.dtype
    G = torch.tensor(_G, dtype=torch.float64, device=weight.device)
    # U[ij] = sum_ab G[i,a] G[j,b] g[a,b]: one GEMM with kron(G, G) (36 x 9) against the
    # flattened kernels (9 x K*C), whose result is already U's (36, K, C) layout.
    T = torch.kron(G, G)
    g = weight.detach().reshape(K * C, 9)
    if torch.compiler.is_compiling() or weight.device.type != "cpu":
        return (T @ g.to(torch.float64).T).reshape(36, K, C).to(out_dtype).contiguous()
    # On CPU in blocks of output channels, so the float64 intermediate (~1 MB) stays in
    # cache: for 512 x 512 channels one piece took ~140 ms, the blocks ~25 ms.
    U = torch.empty((36, K, C), dtype=out_dtype)
    bk = max(1, 4096 // max(C, 1))
    for k0 in range(0, K, bk):
        k1 = min(K, k0 + bk)
        U[:, k0:k1].copy_((T @ g[k0 * C:k1 * C].to(torch.float64).T).view(36, k1 - k0, C))
    return U


def winograd_conv2d_ref(x: Tensor, weight: Tensor, bias: Tensor | None = None,
                        padding: IntPair = 1, relu: bool = False) -> Tensor:
    """The definition: F.conv2d(x, weight, bias, stride 1, padding), then ReLU if asked."""
    y = F.conv2d(x, weight, bias, stride=1, padding=padding)
    return F.relu(y) if relu else y


# ---- argument handling ---------------------------------------------------------------

def _padding(padding) -> tuple[int, int]:
    if type(padding) is int:
        vals = (padding, padding)
    elif (isinstance(padding, (tuple, list)) and len(padding) == 2
          and all(type(v) is int for v in padding)):
        vals = (padding[0], padding[1])
    else:
        raise TypeError(f"padding must be an int or a pair of ints (pad_h, pad_w), got {padding!r}")
    if min(vals) < 0:
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    return vals


def _check(x, weight, weight_t, bias, padding, relu, backend) -> tuple[int, int]:
    """Validates every argument; returns (pad_h, pad_w)."""
    V.choice("backend", backend, BACKENDS)
    if not isinstance(relu, bool):
        raise TypeError(f"relu must be a bool, got {type(relu).__name__}")
    ph, pw = _padding(padding)
    V.tensor("x", x, dims=(4,))
    C, H, W = x.shape[1:]
    if C < 1 or H < 1 or W < 1:
        raise ValueError(f"x must be (batch, channels, height, width) with channels, height and "
                         f"width >= 1, got {tuple(x.shape)}")
    V.tensor("weight", weight, dims=(4,))
    if weight.shape[0] < 1 or tuple(weight.shape[1:]) != (C, 3, 3):
        raise ValueError(f"weight must have shape (out_channels, in_channels, 3, 3) = (K, {C}, 3, 3) "
                         f"for x with {C} channels, got {tuple(weight.shape)}")
    K = weight.shape[0]
    if weight_t is not None:
        V.tensor("weight_t", weight_t, dims=(3,))
        V.shape("weight_t", weight_t, (36, K, C), "(36, out_channels, in_channels)")
    V.tensor("bias", bias, dims=(1,), optional=True)
    V.shape("bias", bias, (K,), "(out_channels,)")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.dtype != x.dtype:
            raise TypeError(f"{name} has dtype {t.dtype} but x has {x.dtype}; every tensor "
                            "must have x's dtype")
    if weight_t is not None and weight_t.dtype != x.dtype and not (
            x.dtype in _HALF and weight_t.dtype == torch.float32):
        raise TypeError(f"weight_t has dtype {weight_t.dtype} but x has {x.dtype}; weight_t must "
                        "have x's dtype (or float32 for float16 / bfloat16 x)")
    V.same_device("x", x, weight=weight, weight_t=weight_t, bias=bias)
    if H + 2 * ph - 2 < 1 or W + 2 * pw - 2 < 1:
        raise ValueError(f"x's spatial size {(H, W)} with padding {(ph, pw)} is smaller than the "
                         "3 x 3 kernel (the output would be empty)")
    _check_backend_dtype(backend, x)
    return ph, pw


def _check_backend_dtype(backend: str, x: Tensor) -> None:
    if backend == "cpp" and x.dtype not in CPP_DTYPES:
        raise TypeError(f"x must be float32 or float64 for backend='cpp', got {x.dtype}")
    if backend == "triton" and x.dtype not in TRITON_DTYPES:
        raise TypeError(f"x must be float32, float16 or bfloat16 for backend='triton', got {x.dtype}")


def _resolve(backend: str, x: Tensor) -> str:
    """'auto': C++ on CPU, Triton on CUDA, for the dtypes they take; else the reference."""
    if backend == "auto":
        if x.device.type == "cpu":
            return "cpp" if _native.available() and x.dtype in CPP_DTYPES else "ref"
        if x.device.type == "cuda" and x.dtype in TRITON_DTYPES and _triton.status()[0]:
            return "triton"
        return "ref"
    check_explicit(backend, x.device)
    _check_backend_dtype(backend, x)
    return backend


def _out_hw(x: Tensor, pad_h: int, pad_w: int) -> tuple[int, int]:
    return x.shape[2] + 2 * pad_h - 2, x.shape[3] + 2 * pad_w - 2


# ---- the backends ----------------------------------------------------------------------

def chunk_tiles(C: int, K: int, P: int, itemsize: int, budget: int | None = None) -> int:
    """Tiles per chunk of the cpp backend: V and M of a chunk within `budget` bytes
    (default CHUNK_BYTES), a multiple of CHUNK_ALIGN (at least one), balanced so the
    last chunk is not a sliver."""
    budget = CHUNK_BYTES if budget is None else budget
    per_tile = 36 * (C + K) * itemsize
    pc = max(CHUNK_ALIGN, budget // per_tile // CHUNK_ALIGN * CHUNK_ALIGN)
    if pc >= P:
        return P
    per_chunk = -(-P // -(-P // pc))
    return -(-per_chunk // CHUNK_ALIGN) * CHUNK_ALIGN


class _Scratch(threading.local):
    """V and M chunk buffers per thread and dtype, grown as needed and kept: fresh
    megabyte-sized buffers per call page-fault (see ARCHITECTURE.md, CPU allocation)."""

    def __init__(self):
        self.bufs: dict = {}

    def get(self, dtype: torch.dtype, nv: int, nm: int) -> tuple[Tensor, Tensor]:
        v, m = self.bufs.get(dtype, (None, None))
        if v is None or v.numel() < nv:
            v = torch.empty(nv, dtype=dtype)
        if m is None or m.numel() < nm:
            m = torch.empty(nm, dtype=dtype)
        self.bufs[dtype] = (v, m)
        return v, m


_scratch = _Scratch()


def _cpp_fwd(x: Tensor, weight_t: Tensor, bias: Tensor | None, pad_h: int, pad_w: int,
             relu: bool) -> Tensor | None:
    """The C++ Winograd forward, or None when an output came out Inf / NaN: Winograd
    spreads one non-finite input over its whole tile and can overflow where the exact
    result is finite, so the caller then convolves directly (rare data pays, not others)."""
    lib = _native.require()
    N, C, H, W = x.shape
    K = weight_t.shape[1]
    Ho, Wo = _out_hw(x, pad_h, pad_w)
    th, tw = -(-Ho // 4), -(-Wo // 4)
    P = N * th * tw
    y = torch.empty(N, K, Ho, Wo, dtype=x.dtype)
    if P == 0:
        return y
    xc, U = x.contiguous(), weight_t.contiguous()
    bc = None if bias is None else bias.contiguous()
    pc = chunk_tiles(C, K, P, x.element_size())
    vbuf, mbuf = _scratch.get(x.dtype, 36 * C * pc, 36 * K * pc)
    name = _DTYPE_NAMES[x.dtype]
    xp, vp, mp, yp, bp = buf(xc), buf(vbuf), buf(mbuf), buf(y), buf(bc)
    v_full, m_full = vbuf[:36 * C * pc].view(36, C, pc), mbuf[:36 * K * pc].view(36, K, pc)
    for p0 in range(0, P, pc):
        n = min(pc, P - p0)
        if n == pc:
            v, m = v_full, m_full
        else:  # the last chunk: (36, C, n) and (36, K, n) laid out densely
            v, m = vbuf[:36 * C * n].view(36, C, n), mbuf[:36 * K * n].view(36, K, n)
        lib.winograd_input_transform(name, xp, N, C, H, W, pad_h, pad_w, th, tw, p0, p0 + n, vp)
        torch.bmm(U, v, out=m)
        if not lib.winograd_output_transform(name, mp, K, p0, p0 + n, th, tw, bp, relu, yp, N, Ho, Wo):
            return None
    return y


def _triton_fwd(x: Tensor, weight_t: Tensor, bias: Tensor | None, pad_h: int, pad_w: int,
                relu: bool) -> Tensor:
    K = _triton.load("winograd_conv2d")
    return K.winograd_conv2d_fwd(x.contiguous(), weight_t.contiguous(),
                                 None if bias is None else bias.contiguous(), pad_h, pad_w, relu)


def _forward(x, weight, weight_t, bias, pad_h, pad_w, relu, backend):
    b = _resolve(backend, x)
    y = None
    if b == "cpp":
        y = _cpp_fwd(x, weight_t, bias, pad_h, pad_w, relu)
    elif b == "triton":
        y = _triton_fwd(x, weight_t, bias, pad_h, pad_w, relu)
    if y is None:
        return winograd_conv2d_ref(x, weight, bias, (pad_h, pad_w), relu)
    return y


# ---- the custom op ---------------------------------------------------------------------

@torch.library.custom_op("effseg::winograd_conv2d", mutates_args=())
def _winograd_conv2d_op(x: Tensor, weight: Tensor, weight_t: Tensor, bias: Tensor | None,
                        pad_h: int, pad_w: int, relu: bool) -> Tensor:
    # Graph passes call the op directly, so it checks its arguments itself.
    _check(x, weight, weight_t, bias, (pad_h, pad_w), relu, "auto")
    return _forward(x, weight, weight_t, bias, pad_h, pad_w, relu, _BACKEND.get())


@_winograd_conv2d_op.register_fake
def _(x, weight, weight_t, bias, pad_h, pad_w, relu):
    Ho, Wo = _out_hw(x, pad_h, pad_w)
    return x.new_empty((x.shape[0], weight.shape[0], Ho, Wo))


def _setup_context(ctx, inputs, output):
    x, weight, _, bias, pad_h, pad_w, relu = inputs
    # The ReLU mask comes from the output: y > 0 exactly where the pre-activation is.
    ctx.save_for_backward(x, weight, output if relu else None)
    ctx.args = (bias is not None, (pad_h, pad_w), relu)


def _backward(ctx, gy):
    x, weight, y = ctx.saved_tensors
    has_bias, pad, relu = ctx.args
    g = torch.where(y > 0, gy, torch.zeros_like(gy)) if relu else gy
    need_x, need_w, _, need_b = ctx.needs_input_grad[:4]
    gx = torch.nn.grad.conv2d_input(x.shape, weight, g, padding=pad) if need_x else None
    gw = torch.nn.grad.conv2d_weight(x, weight.shape, g, padding=pad) if need_w else None
    gb = g.sum((0, 2, 3)) if need_b and has_bias else None
    return gx, gw, None, gb, None, None, None


torch.library.register_autograd("effseg::winograd_conv2d", _backward, setup_context=_setup_context)


def _needs_grad(*ts) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in ts)


def winograd_conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None,
                    padding: IntPair = 1, relu: bool = False, *, weight_t: Tensor | None = None,
                    backend: str = "auto") -> Tensor:
    """3 x 3 stride-1 convolution (+ bias, + ReLU) by Winograd F(4x4, 3x3).

    x: (N, C, H, W); weight: (K, C, 3, 3); bias: (K,) or None; padding: int or
    (pad_h, pad_w), each >= 0 (zeros). Returns (N, K, H + 2 pad_h - 2, W + 2 pad_w - 2),
    equal to winograd_conv2d_ref up to the algorithm's rounding (float32: <= 1.5e-5 of
    the output's largest value measured up to 512 channels). weight_t: winograd_weight(weight), computed here when None (pass
    it to skip the recomputation). Every tensor has x's dtype and device, except that
    weight_t may be float32 for float16 / bfloat16 x (more accurate: see
    winograd_weight; computed that way when None).

    Non-finite and huge inputs: Winograd would make the whole 4 x 4 output tile(s) whose
    6 x 6 input window holds a NaN / Inf non-finite (direct convolution: only the outputs
    whose 3 x 3 window does), and float32 products |x| |w| near 1e37 could overflow in
    the transforms where the exact result is finite. The C++ output transform reports
    any non-finite value (before ReLU, which would turn NaN into 0) as it writes it, and
    the call is then computed by direct convolution: the same answer as the reference.
    The Triton backend (CUDA) does not check yet: use backend="ref" for such data there.

    backend: "auto" (C++ on CPU for float32 / float64, Triton on CUDA for float32 /
    float16 / bfloat16, else the reference), "cpp", "triton" or "ref". The backend
    applies to eager calls; inside torch.compile / torch.export graphs the op runs
    "auto". Differentiable in x, weight and bias (PyTorch's convolution backward).
    """
    ph, pw = _check(x, weight, weight_t, bias, padding, relu, backend)
    if weight_t is None:
        with torch.no_grad():
            weight_t = winograd_weight(weight, torch.float32 if x.dtype in _HALF else None)
    args = (x, weight, weight_t, bias, ph, pw, relu)
    if torch.compiler.is_compiling():
        return _winograd_conv2d_op(*args)
    if must_dispatch() or _needs_grad(x, weight, bias):
        token = _BACKEND.set(backend)
        try:
            return _winograd_conv2d_op(*args)
        finally:
            _BACKEND.reset(token)
    # Eager inference skips the custom-op dispatch (tens of microseconds per call).
    return _forward(*args, backend)


def _onnx_lowering(x, weight, weight_t, bias, pad_h, pad_w, relu):
    """A standard Conv (+ Relu) on the original weight: ONNX Runtime and TensorRT pick
    their own convolution algorithm (Winograd included)."""
    return winograd_conv2d_ref(x, weight, bias, (pad_h, pad_w), relu)


_lowering.register(torch.ops.effseg.winograd_conv2d.default, _onnx_lowering)
