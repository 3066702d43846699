"""effseg.ops.depthwise_conv2d: depthwise 2-D convolution with fused bias and activation.

Depthwise convolution (groups = channels, one kH x kW filter per channel; Howard et al.
2017, MobileNets) is the spatial half of the separable convolutions in lightweight
segmentation decoders (UNetFormer's 8 x 8 local branch, MobileNet-style encoders).

    y[b, c] = act(bias[c] + sum_{i,j} weight[c, 0, i, j] * x_pad[b, c, oh*sH + i*dH, ow*sW + j*dW])

with PyTorch's F.conv2d semantics for stride, padding (int, pair, "same", "valid"; "same"
with an even dilated kernel pads one more at the bottom / right, exactly as PyTorch) and
dilation. Backends: a C++ CPU kernel (float32 / float64), a Triton kernel (CUDA), and
the reference (F.conv2d). float16 / bfloat16 inputs are computed in float32 and the
result cast back. The backward uses PyTorch's own convolution backward.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import _native, _triton
from .._native import buf
from . import _lowering
from . import _validate as V
from ._backend import must_dispatch, resolve

BACKENDS = ("auto", "ref", "cpp", "triton")
ACTIVATIONS = (None, "relu", "relu6", "gelu", "silu")
# Codes shared with the C++ kernel (csrc/depthwise_conv2d/depthwise_conv2d.h: Act) and
# the Triton kernel.
_ACT_CODES = {None: 0, "none": 0, "relu": 1, "relu6": 2, "gelu": 3, "silu": 4}
_ACT_NAMES = {0: None, 1: "relu", 2: "relu6", 3: "gelu", 4: "silu"}
# Kernel sides accepted by every backend (the C++ kernel's kMaxKernel).
MIN_KERNEL, MAX_KERNEL = 1, 31

IntPair = int | Sequence[int]


def compute_dtype(x: Tensor) -> torch.dtype:
    """float64 stays float64; everything else is computed in float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _act_ref(y: Tensor, activation: str | None) -> Tensor:
    if activation is None or activation == "none":
        return y
    if activation == "relu":
        return F.relu(y)
    if activation == "relu6":
        return F.relu6(y)
    if activation == "gelu":
        return F.gelu(y)  # the exact erf form (approximate="none")
    return F.silu(y)


def depthwise_conv2d_ref(x: Tensor, weight: Tensor, bias: Tensor | None = None, *,
                         stride: IntPair = 1, padding: IntPair | str = 0,
                         dilation: IntPair = 1, activation: str | None = None) -> Tensor:
    """The definition: F.conv2d(groups=C) in float32 (float64 for float64 input), + bias,
    then the activation, cast to x's dtype."""
    cd = compute_dtype(x)
    y = F.conv2d(x.to(cd), weight.to(cd), None if bias is None else bias.to(cd),
                 stride=stride, padding=padding, dilation=dilation, groups=x.shape[1])
    return _act_ref(y, activation).to(x.dtype)


# ---- argument handling ---------------------------------------------------------------

def _pair(name: str, value, minimum: int) -> tuple[int, int]:
    if type(value) is int and value >= minimum:  # the common case, cheaply
        return value, value
    vals = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
    ok = (isinstance(vals, (tuple, list)) and len(vals) == 2
          and all(isinstance(v, int) and not isinstance(v, bool) for v in vals))
    if not ok:
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(vals) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(vals[0]), int(vals[1])


def geometry(hw: Sequence[int], kernel: Sequence[int], stride, padding, dilation):
    """PyTorch's conv2d geometry: ((pad_top, pad_bottom, pad_left, pad_right), (Ho, Wo)).

    padding: int, pair, "valid" (0) or "same" (output size = input size, stride 1 only;
    total padding d*(k-1) split as total//2 before and the rest after, as F.conv2d).
    """
    sH, sW = _pair("stride", stride, 1)
    dH, dW = _pair("dilation", dilation, 1)
    if isinstance(padding, str):
        if padding == "valid":
            pads = (0, 0, 0, 0)
        elif padding == "same":
            if (sH, sW) != (1, 1):
                raise ValueError("padding='same' is not supported for strided convolutions "
                                 f"(stride={stride!r}), as in F.conv2d")
            tH, tW = dH * (kernel[0] - 1), dW * (kernel[1] - 1)
            pads = (tH // 2, tH - tH // 2, tW // 2, tW - tW // 2)
        else:
            raise ValueError(f"padding must be an int, a pair of ints, 'same' or 'valid'; got {padding!r}")
    else:
        pH, pW = _pair("padding", padding, 0)
        pads = (pH, pH, pW, pW)
    H, W = hw
    Ho = (H + pads[0] + pads[1] - dH * (kernel[0] - 1) - 1) // sH + 1
    Wo = (W + pads[2] + pads[3] - dW * (kernel[1] - 1) - 1) // sW + 1
    if Ho < 1 or Wo < 1:
        raise ValueError(
            f"x's spatial size {tuple(hw)} with padding {padding!r} is smaller than the dilated "
            f"kernel ({dH * (kernel[0] - 1) + 1}, {dW * (kernel[1] - 1) + 1})")
    return pads, (Ho, Wo), (sH, sW), (dH, dW)


def _check(x, weight, bias, activation, backend):
    V.choice("backend", backend, BACKENDS)
    if activation not in _ACT_CODES:
        raise ValueError(f"activation must be one of None, 'relu', 'relu6', 'gelu', 'silu'; "
                         f"got {activation!r}")
    V.tensor("x", x, dims=(4,))
    V.tensor("weight", weight, dims=(4,))
    C, H, W = x.shape[1:]
    if C < 1 or H < 1 or W < 1:
        raise ValueError(f"x must be (batch, channels, height, width) with channels, height "
                         f"and width >= 1, got {tuple(x.shape)}")
    if weight.shape[0] != C or weight.shape[1] != 1:
        raise ValueError(f"weight must have shape (channels, 1, kH, kW) = ({C}, 1, kH, kW) for "
                         f"x with {C} channels (nn.Conv2d(C, C, k, groups=C).weight), got "
                         f"{tuple(weight.shape)}")
    kH, kW = weight.shape[2], weight.shape[3]
    if not (MIN_KERNEL <= kH <= MAX_KERNEL and MIN_KERNEL <= kW <= MAX_KERNEL):
        raise ValueError(f"weight's kernel size must be in [{MIN_KERNEL}, {MAX_KERNEL}] on each "
                         f"side, got ({kH}, {kW})")
    V.tensor("bias", bias, dims=(1,), optional=True)
    V.shape("bias", bias, (C,), "(channels,)")
    V.same_device("x", x, weight=weight, bias=bias)


def _int_list(name: str, value, length: int, minimum: int) -> None:
    ok = (isinstance(value, (list, tuple)) and len(value) == length
          and all(isinstance(v, int) and not isinstance(v, bool) for v in value))
    if not ok:
        raise TypeError(f"{name} must be a list of {length} ints, got {value!r}")
    if min(value) < minimum:
        raise ValueError(f"{name} must be >= {minimum} everywhere, got {value!r}")


def _check_op(x, weight, bias, stride, padding, dilation, act, backend):
    """The custom op's canonical arguments (see the backends below), as a direct
    torch.ops.effseg.depthwise_conv2d call or a traced graph passes them."""
    if act not in _ACT_NAMES:
        raise ValueError(f"activation must be a code 0..4 (none, relu, relu6, gelu, silu), got {act!r}")
    _check(x, weight, bias, _ACT_NAMES[act], backend)
    _int_list("stride", stride, 2, 1)
    _int_list("dilation", dilation, 2, 1)
    _int_list("padding", padding, 4, 0)
    if padding[1] < padding[0] or padding[3] < padding[2]:
        raise ValueError(f"padding [top, bottom, left, right] needs bottom >= top and right >= "
                         f"left (PyTorch's 'same' pads the extra row / column last), got {padding!r}")
    Ho, Wo = _out_hw(x, weight, stride, padding, dilation)
    if Ho < 1 or Wo < 1:
        raise ValueError(f"x's spatial size {tuple(x.shape[2:])} with padding {padding!r} is "
                         f"smaller than the dilated kernel")


def _resolve(backend: str, device: torch.device) -> str:
    return resolve(backend, device)


# ---- the backends (all take the op's canonical arguments) ----------------------------
# stride, dilation: [sH, sW], [dH, dW]; padding: [top, bottom, left, right] with
# bottom >= top and right >= left; act: a code of _ACT_CODES.

def _out_hw(x: Tensor, weight: Tensor, stride, padding, dilation):
    H, W = x.shape[2], x.shape[3]
    kH, kW = weight.shape[2], weight.shape[3]
    Ho = (H + padding[0] + padding[1] - dilation[0] * (kH - 1) - 1) // stride[0] + 1
    Wo = (W + padding[2] + padding[3] - dilation[1] * (kW - 1) - 1) // stride[1] + 1
    return Ho, Wo


def _pad_extra(x: Tensor, padding) -> Tensor:
    """x with the bottom / right padding beyond the symmetric (top, left) part written out."""
    eb, er = padding[1] - padding[0], padding[3] - padding[2]
    return F.pad(x, (0, er, 0, eb)) if eb or er else x


def _torch_fwd(x, weight, bias, stride, padding, dilation, act):
    cd = compute_dtype(x)
    y = F.conv2d(_pad_extra(x.to(cd), padding), weight.to(cd),
                 None if bias is None else bias.to(cd), stride=stride,
                 padding=(padding[0], padding[2]), dilation=dilation, groups=x.shape[1])
    return _act_ref(y, _ACT_NAMES[act])


def _as(t: Tensor, dtype: torch.dtype) -> Tensor:
    """t in dtype, contiguous (itself when it already is: .to / .contiguous cost
    microseconds each, a visible share of a small convolution)."""
    return t if t.dtype == dtype and t.is_contiguous() else t.to(dtype).contiguous()


def _cpp_fwd(x, weight, bias, stride, padding, dilation, act):
    cd = compute_dtype(x)
    B, C, H, W = x.shape
    kH, kW = weight.shape[2], weight.shape[3]
    Ho, Wo = _out_hw(x, weight, stride, padding, dilation)
    xc, wc = _as(x, cd), _as(weight, cd)
    bc = None if bias is None else _as(bias, cd)
    out = torch.empty(B, C, Ho, Wo, dtype=cd)
    _native.require().depthwise_conv2d_fwd(
        "float64" if cd == torch.float64 else "float32", B, C, H, W, kH, kW,
        stride[0], stride[1], dilation[0], dilation[1], padding[0], padding[2], Ho, Wo,
        buf(xc), buf(wc), buf(bc), int(act), buf(out))
    return out


def _triton_fwd(x, weight, bias, stride, padding, dilation, act):
    Ho, Wo = _out_hw(x, weight, stride, padding, dilation)
    K = _triton.load("depthwise_conv2d")
    return K.depthwise_conv2d_fwd(x.contiguous(), weight.contiguous(),
                                  None if bias is None else bias.contiguous(),
                                  stride, (padding[0], padding[2]), dilation, (Ho, Wo), int(act))


_FORWARDS = {"cpp": _cpp_fwd, "triton": _triton_fwd, "ref": _torch_fwd}


def _forward(x, weight, bias, stride, padding, dilation, act, backend):
    y = _FORWARDS[_resolve(backend, x.device)](x, weight, bias, stride, padding, dilation, act)
    return y if y.dtype == x.dtype else y.to(x.dtype)


# ---- the custom op ---------------------------------------------------------------------

@torch.library.custom_op("effseg::depthwise_conv2d", mutates_args=())
def _depthwise_conv2d_op(x: Tensor, weight: Tensor, bias: Tensor | None, stride: list[int],
                         padding: list[int], dilation: list[int], activation: int,
                         backend: str) -> Tensor:
    # Callable directly as torch.ops.effseg.depthwise_conv2d (and from traced graphs):
    # the op checks its arguments itself, the kernels trust them.
    _check_op(x, weight, bias, stride, padding, dilation, activation, backend)
    return _forward(x, weight, bias, stride, padding, dilation, activation, backend)


@_depthwise_conv2d_op.register_fake
def _(x, weight, bias, stride, padding, dilation, activation, backend):
    _check_op(x, weight, bias, stride, padding, dilation, activation, backend)
    Ho, Wo = _out_hw(x, weight, stride, padding, dilation)
    return x.new_empty((x.shape[0], x.shape[1], Ho, Wo))


def _act_derivative(z: Tensor, act: int) -> Tensor:
    """d act / dz for GELU (Phi(z) + z phi(z)) and SiLU (s (1 + z (1 - s)), s = sigmoid(z)),
    written with differentiable ops so that second derivatives exist."""
    if act == 3:
        return 0.5 * (1 + torch.erf(z * 0.7071067811865476)) + z * torch.exp(-0.5 * z * z) * 0.3989422804014327
    s = torch.sigmoid(z)
    return s * (1 + z * (1 - s))


def _setup_context(ctx, inputs, output):
    x, weight, bias, stride, padding, dilation, activation, backend = inputs
    # relu / relu6 masks come from the output; gelu / silu recompute the pre-activation.
    ctx.save_for_backward(x, weight, bias, output if activation in (1, 2) else None)
    ctx.args = (stride, padding, dilation, activation, backend)


def _backward(ctx, gy):
    x, weight, bias, y = ctx.saved_tensors
    stride, padding, dilation, act, backend = ctx.args
    cd = compute_dtype(x)
    gz = gy.to(cd)
    if act == 1:
        gz = torch.where(y > 0, gz, 0)
    elif act == 2:
        gz = torch.where((y > 0) & (y < 6), gz, 0)
    elif act in (3, 4):
        # In the compute dtype (the op returns its input's dtype), not rounded to fp16.
        z = _depthwise_conv2d_op(x.to(cd), weight, bias, stride, padding, dilation, 0, backend)
        gz = gz * _act_derivative(z, act)
    need_x, need_w, need_b = ctx.needs_input_grad[:3]
    xp = _pad_extra(x.to(cd), padding)
    gx, gw, gb = torch.ops.aten.convolution_backward(
        gz, xp, weight.to(cd), None if bias is None else [bias.shape[0]], list(stride),
        [padding[0], padding[2]], list(dilation), False, [0, 0], x.shape[1],
        [need_x, need_w, need_b and bias is not None])
    if gx is not None:
        gx = gx[:, :, :x.shape[2], :x.shape[3]].to(x.dtype)
    return (gx, None if gw is None else gw.to(weight.dtype),
            None if gb is None else gb.to(bias.dtype), None, None, None, None, None)


torch.library.register_autograd("effseg::depthwise_conv2d", _backward, setup_context=_setup_context)


def _needs_grad(*ts) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in ts)


def depthwise_conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, *,
                     stride: IntPair = 1, padding: IntPair | str = 0,
                     dilation: IntPair = 1, activation: str | None = None,
                     backend: str = "auto") -> Tensor:
    """Depthwise conv2d (groups = channels) + bias + activation, in one kernel.

    x: (B, C, H, W); weight: (C, 1, kH, kW) as nn.Conv2d(C, C, k, groups=C) stores it,
    kH, kW in [1, 31] (square or rectangular; even sizes too); bias: (C,) or None.
    stride, dilation: int or pair, >= 1 (any value, every backend); padding: int, pair,
    "same" or "valid" exactly as F.conv2d (including its asymmetric "same" for even
    kernels and its refusal of "same" with stride > 1). activation: None, "relu",
    "relu6", "gelu" (exact erf form, as nn.GELU()) or "silu", applied after the bias.
    float16 / bfloat16 are computed in float32 and returned in x's dtype; weight and
    bias may have another float dtype than x.

    x is not checked for Inf: with activation "gelu" or "silu" the C++ kernel may give
    +-inf where the reference gives NaN (silu(-inf), gelu(+inf)); both are non-finite.

    backend: "auto" (C++ on CPU, Triton on CUDA, else the reference), "cpp", "triton"
    or "ref" (F.conv2d + separate bias and activation ops). Differentiable in x, weight
    and bias (PyTorch's convolution backward, through the activation).
    """
    _check(x, weight, bias, activation, backend)
    if backend == "ref":
        # Plain PyTorch ops, also when traced or exported (as linear_attention's "ref"):
        # a model on backend="ref" is then what a user without effseg has.
        return depthwise_conv2d_ref(x, weight, bias, stride=stride, padding=padding,
                                    dilation=dilation, activation=activation)
    pads, _, st, dil = geometry((x.shape[2], x.shape[3]), (weight.shape[2], weight.shape[3]),
                                stride, padding, dilation)
    act = _ACT_CODES[activation]
    args = (x, weight, bias, list(st), list(pads), list(dil), act, backend)
    if must_dispatch() or _needs_grad(x, weight, bias):
        return _depthwise_conv2d_op(*args)
    # Eager inference skips the custom-op dispatch (tens of microseconds per call, a
    # sizeable share of a small convolution's time); the computation is the same.
    return _forward(*args)


def _onnx_lowering(x, weight, bias, stride, padding, dilation, activation, backend):
    """Standard ops: Pad (only for PyTorch's asymmetric 'same'), grouped Conv, activation."""
    return _torch_fwd(x, weight, bias, stride, padding, dilation, activation).to(x.dtype)


_lowering.register(torch.ops.effseg.depthwise_conv2d.default, _onnx_lowering)
