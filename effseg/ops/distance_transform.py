"""effseg.ops.distance_transform: exact Euclidean distance transform of 2-D masks.

`distance_transform(mask)` is `scipy.ndimage.distance_transform_edt` for a batch of
masks (..., H, W): for every nonzero pixel, the Euclidean distance to the nearest zero
pixel of its image (with pixel spacing (sy, sx)); 0 on zero pixels. One difference: an
image without any zero pixel has no distance to measure and gets +inf everywhere
(scipy measures to a pixel just outside the image there). Output float32 on the
mask's device.

Backends: "cpp" (CPU; separable passes with Felzenszwalb & Huttenlocher's lower
envelope of parabolas, linear time, OpenMP), "triton" (CUDA; exact column sweeps and
a windowed exact row minimum, no host round trip), "ref" (plain PyTorch, the
definition). "auto" picks cpp for CPU tensors and triton for CUDA tensors (the C++
kernel through host memory when Triton is unusable there, else the reference).

`signed_distance(onehot)` builds the per-class signed maps of Kervadec et al.'s
boundary loss from a one-hot (B, K, H, W) label, with one transform call for all maps.

No gradient: the distance is a piecewise-constant function of a discrete mask, so the
op has no autograd formula; the mask is detached and the output never requires grad.
No ONNX lowering either: this is a training-time op (loss targets), not part of a
deployed network.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
from torch import Tensor

from .. import _native, _triton
from .._native import buf
from . import _validate as V
from ._backend import check_explicit

BACKENDS = ("auto", "ref", "cpp", "triton")
_REF_CANDIDATES = 1 << 24  # distance_transform_ref's candidates per step (memory bound)
SpacingArg = float | Sequence[float] | None


# ---- argument checks -------------------------------------------------------------------

def _spacing(spacing: SpacingArg) -> tuple[float, float]:
    """(sy, sx) from None (unit), one number (both axes) or a pair (rows, columns)."""
    if spacing is None:
        return 1.0, 1.0
    if isinstance(spacing, numbers.Real) and not isinstance(spacing, bool):
        vals = (float(spacing),) * 2
    elif isinstance(spacing, (tuple, list)):
        if len(spacing) != 2:
            raise ValueError(f"spacing must be one number or a pair (sy, sx), got {len(spacing)} values")
        if not all(isinstance(s, numbers.Real) and not isinstance(s, bool) for s in spacing):
            raise TypeError(f"spacing values must be real numbers, got {spacing!r}")
        vals = (float(spacing[0]), float(spacing[1]))
    else:
        raise TypeError(f"spacing must be None, a number or a pair (sy, sx), got {type(spacing).__name__}")
    if not all(math.isfinite(s) and s > 0 for s in vals):
        raise ValueError(f"spacing must be finite and > 0, got {vals}")
    return vals


def _check_mask(name: str, mask, min_dims: int = 2, shape_doc: str = "(..., H, W)",
                values: bool = True):
    if not isinstance(mask, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(mask).__name__}")
    if mask.is_complex():
        raise TypeError(f"{name} must be bool, integer or real floating point, got {mask.dtype}")
    if mask.dim() < min_dims:
        raise ValueError(f"{name} must be {shape_doc} with at least {min_dims} dims, got shape {tuple(mask.shape)}")
    # A NaN is neither zero nor a value: refuse it rather than guess (a host sync, so
    # eager mode only; traced graphs skip it, like the other data checks).
    if (values and mask.is_floating_point() and not torch.compiler.is_compiling()
            and bool(torch.isnan(mask).any())):
        raise ValueError(f"{name} contains NaN values")


def _resolve(backend: str, device: torch.device) -> str:
    """The backend that runs: 'auto' picks the fastest usable one for the device."""
    V.choice("backend", backend, BACKENDS)
    if backend == "auto":
        if device.type == "cuda" and _triton.status()[0]:
            return "triton"
        if device.type in ("cpu", "cuda") and _native.available():
            # CUDA without Triton: the C++ kernel through host memory beats the
            # reference, whose memory grows as H*W*(H + W).
            return "cpp" if device.type == "cpu" else "cpp_host"
        return "ref"
    check_explicit(backend, device, "a mask")
    return backend


# ---- the definition ----------------------------------------------------------------------

def distance_transform_ref(mask: Tensor, *, spacing: SpacingArg = None) -> Tensor:
    """The definition, in float64, by the separable form of the squared distance:

        d²(y, x) = min over zero pixels (i, j) of sy² (y - i)² + sx² (x - j)²
                 = min_j [ sx² (x - j)² + min_i { sy² (y - i)² : mask[i, j] == 0 } ]

    Each minimum is taken over all candidates at once: O(H·W·(H + W)) time, memory
    bounded by taking a few rows at a time. Meant for tests and small images. float32
    result.
    """
    sy, sx = _spacing(spacing)
    H, W = mask.shape[-2:]
    out = torch.empty(mask.shape, dtype=torch.float32, device=mask.device)
    if out.numel() == 0:
        return out
    zero = (mask == 0).reshape(-1, H, W)
    f64 = {"dtype": torch.float64, "device": mask.device}
    y, x = torch.arange(H, **f64), torch.arange(W, **f64)
    dy2 = ((y[:, None] - y[None, :]) * sy) ** 2  # [y, i]
    dx2 = ((x[:, None] - x[None, :]) * sx) ** 2  # [x, j]
    inf = torch.tensor(math.inf, **f64)
    flat = out.view(-1, H, W)
    rows = max(1, _REF_CANDIDATES // (W * (H + W)))  # rows per step
    for n in range(zero.shape[0]):
        for y0 in range(0, H, rows):
            y1 = min(H, y0 + rows)
            col = torch.where(zero[n][None, :, :], dy2[y0:y1, :, None], inf).amin(dim=1)  # [y, j]
            d2 = (col[:, None, :] + dx2[None, :, :]).amin(dim=2)  # [y, x]
            flat[n, y0:y1] = d2.sqrt()
    return out


# ---- backends ----------------------------------------------------------------------------

def _as_u8(mask: Tensor) -> Tensor:
    """(N, H, W) contiguous uint8, nonzero = foreground (bool is viewed, not copied)."""
    m = mask if mask.dtype == torch.bool else mask != 0
    H, W = mask.shape[-2:]
    return m.reshape(-1, H, W).contiguous().view(torch.uint8)


def _cpp(mask: Tensor, sy: float, sx: float) -> Tensor:
    m = _as_u8(mask)
    out = torch.empty(m.shape, dtype=torch.float32)
    _native.require().distance_transform(*m.shape, buf(m), buf(out), sy, sx)
    return out


def _run(mask: Tensor, sy: float, sx: float, backend: str) -> Tensor:
    if mask.numel() == 0:
        return torch.empty(mask.shape, dtype=torch.float32, device=mask.device)
    be = _resolve(backend, mask.device)
    if be == "cpp":
        out = _cpp(mask, sy, sx)
    elif be == "cpp_host":
        out = _cpp(mask.cpu(), sy, sx).to(mask.device)
    elif be == "triton":
        out = _triton.load("distance_transform").distance_transform(_as_u8(mask), sy, sx)
    else:
        out = distance_transform_ref(mask, spacing=(sy, sx))
    return out.reshape(mask.shape)


@torch.library.custom_op("effseg::distance_transform", mutates_args=())
def _distance_transform_op(mask: Tensor, sy: float, sx: float, backend: str) -> Tensor:
    # Callable directly as torch.ops.effseg.distance_transform: the op checks what the
    # kernels trust (the NaN scan stays with the public function, a host sync).
    _check_mask("mask", mask, values=False)
    _spacing((sy, sx))
    return _run(mask, sy, sx, backend)


@_distance_transform_op.register_fake
def _(mask, sy, sx, backend):
    _check_mask("mask", mask, values=False)
    return mask.new_empty(mask.shape, dtype=torch.float32)


def distance_transform(mask: Tensor, *, spacing: SpacingArg = None, backend: str = "auto") -> Tensor:
    """Exact Euclidean distance transform of a batch of 2-D masks.

    mask: (..., H, W), any number of leading dims (none included); bool, integer or
    floating point, nonzero = foreground (as scipy); NaN is rejected.
    spacing: pixel size (sy, sx) along (H, W), or one number for both; default 1.
    Returns float32 (..., H, W) on the mask's device: for each nonzero pixel the
    distance to the nearest zero pixel of its image, 0 on zero pixels, and +inf
    everywhere in an image that has no zero pixel.

    No gradient flows (the result is piecewise constant in the mask); the output does
    not require grad. backend: "auto", "cpp" (CPU), "triton" (CUDA) or "ref".
    """
    _check_mask("mask", mask)
    sy, sx = _spacing(spacing)
    V.choice("backend", backend, BACKENDS)
    if not torch.compiler.is_compiling():
        _resolve(backend, mask.device)  # fail early, naming the backend, outside the op
    return _distance_transform_op(mask.detach(), sy, sx, backend)


def signed_distance(onehot: Tensor, *, spacing: SpacingArg = None, backend: str = "auto") -> Tensor:
    """Per-class signed distance maps of a one-hot label, as in Kervadec et al.'s
    boundary loss ("Boundary loss for highly unbalanced segmentation", MIDL 2019; their
    `one_hot2dist`): with g the class mask,

        phi_k = d_out * (1 - g) - (d_in - 1) * g

    d_out: distance of an outside pixel to the nearest class pixel; d_in: distance of a
    class pixel to the nearest non-class pixel. So phi_k > 0 outside the class, growing
    away from it, and 1 - d_in <= 0 inside (0 on the inner boundary with unit spacing).
    The boundary loss is then mean(softmax_k * phi_k).

    onehot: (B, K, H, W) bool, integer or floating point holding only 0 and 1 (checked
    in eager mode). A class absent from an image, or covering all of it, has no
    boundary: its map is all 0 (Kervadec's code leaves absent classes at 0; a full
    class would give inf here), so the result never holds inf or NaN.
    Returns float32 (B, K, H, W). All B*K inside and outside maps are computed by one
    distance_transform call.
    """
    _check_mask("onehot", onehot, min_dims=4, shape_doc="(B, K, H, W)")
    if onehot.dim() != 4:
        raise ValueError(f"onehot must be (B, K, H, W), got shape {tuple(onehot.shape)}")
    checkable = onehot.dtype != torch.bool and not torch.compiler.is_compiling()
    if checkable and bool(((onehot != 0) & (onehot != 1)).any()):
        raise ValueError("onehot must hold only 0 and 1 (a one-hot label, not probabilities)")
    g = onehot.detach()
    # One copy into (B, K, H, W) order (F.one_hot(...).permute gives channels-last
    # strides), so that the stack below is already in the kernel's layout.
    g = (g if g.dtype == torch.bool else g != 0).contiguous()
    d = distance_transform(torch.stack([~g, g]), spacing=spacing, backend=backend)
    # d_out is 0 on class pixels and d_in on the others, so phi = d_out - d_in + g,
    # never inf - inf. An empty class has d_out = +inf everywhere, a full one d_in =
    # +inf: one pixel of each map tells, and those maps are set to 0.
    phi = torch.sub(d[0], d[1]).add_(g)
    has_boundary = torch.isfinite(d[..., :1, :1]).all(dim=0)
    return phi.masked_fill_(~has_boundary, 0.0)
