"""Shared pieces of the losses: argument checks, one-hot targets, distance maps, reductions.

Conventions every loss follows:
- logits (B, K, H, W) floating point, target (B, H, W) integer on the same device; a pixel
  whose target is `ignore_index` is invalid and contributes nothing, whatever its logits
  (NaN and inf included: losses read them through valid_logits).
- Half-precision logits are computed in float32 (the loss value too); float64 stays float64.
- For distance maps an ignored pixel belongs to no class (neither in the target nor in the
  prediction), so an ignored region borders the classes next to it.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from .._labels import argmax_channels  # noqa: F401  the losses call it as C.argmax_channels
from ..ops import distance_transform

REDUCTIONS = ("mean", "sum", "none")


def check_inputs(logits, target, ignore_index: int) -> None:
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    if not logits.dtype.is_floating_point:
        raise TypeError(f"logits must be a floating-point tensor (B, K, H, W), got {logits.dtype}")
    if logits.dim() != 4:
        raise ValueError(f"logits must be 4-D (B, K, H, W), got shape {tuple(logits.shape)}")
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be a torch.Tensor, got {type(target).__name__}")
    if target.dtype.is_floating_point or target.dtype.is_complex or target.dtype == torch.bool:
        raise TypeError(f"target must be an integer tensor of class indices (B, H, W), got {target.dtype}")
    B, K, H, W = logits.shape
    if tuple(target.shape) != (B, H, W):
        raise ValueError(f"target must have shape (B, H, W) = {(B, H, W)} to match logits "
                         f"{tuple(logits.shape)}, got {tuple(target.shape)}")
    if target.device != logits.device:
        raise ValueError(f"target is on {target.device} but logits is on {logits.device}; move them to one device")
    if torch.compiler.is_compiling():
        return
    # One reduction (and host sync) instead of a device-side assert deep inside one_hot/CE.
    bad = (target != ignore_index) & ((target < 0) | (target >= K))
    if bool(bad.any()):
        raise ValueError(f"target has labels outside [0, {K}) that are not ignore_index={ignore_index}")


def check_reduction(reduction: str, allowed: Sequence[str] = REDUCTIONS) -> str:
    if reduction not in allowed:
        raise ValueError(f"reduction must be one of {', '.join(map(repr, allowed))}; got {reduction!r}")
    return reduction


def check_classes(classes, what: str = "classes") -> list[int] | None:
    if classes is None:
        return None
    try:
        out = [int(c) for c in classes]
    except TypeError:
        raise TypeError(f"{what} must be None or a sequence of class indices, got {classes!r}") from None
    if not out or min(out) < 0 or len(set(out)) != len(out):
        raise ValueError(f"{what} must be a non-empty sequence of distinct non-negative class indices, got {classes!r}")
    return out


def class_index(classes: list[int] | None, K: int, device) -> torch.Tensor | None:
    if classes is None:
        return None
    if max(classes) >= K:
        raise ValueError(f"classes has index {max(classes)} but logits have only K={K} classes")
    return torch.tensor(classes, device=device)


def weight_buffer(weight, name: str) -> torch.Tensor | None:
    """A 1-D float64 tensor of non-negative per-class weights (a buffer, so it follows .to())."""
    if weight is None:
        return None
    w = torch.as_tensor(weight, dtype=torch.float64).detach().clone()
    if w.dim() != 1 or w.numel() == 0:
        raise ValueError(f"{name} must be a 1-D sequence with one weight per class, got shape {tuple(w.shape)}")
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
        raise ValueError(f"{name} must be finite and non-negative, got {w.tolist()}")
    return w


def class_weights(w: torch.Tensor | None, K: int, like: torch.Tensor, name: str) -> torch.Tensor | None:
    if w is None:
        return None
    if w.numel() != K:
        raise ValueError(f"{name} has {w.numel()} entries but logits have K={K} classes")
    return w.to(device=like.device, dtype=like.dtype)


def compute_dtype(logits: torch.Tensor) -> torch.Tensor:
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


def valid_logits(logits: torch.Tensor, target: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """compute_dtype(logits) with 0 at ignored pixels. An ignored pixel contributes nothing,
    but 0 * NaN is NaN: nodata pixels (NaN or inf logits where the image had no data)
    turned the focal, boundary and distance losses into NaN and every gradient into NaN
    (cross-entropy's too), and Dice into a silent 1. torch.where passes no gradient, NaN
    or otherwise, to the branch it drops. Non-finite logits at valid pixels still show."""
    x = compute_dtype(logits)
    keep = valid_mask(target, ignore_index).unsqueeze(1)
    return torch.where(keep, x, torch.zeros((), dtype=x.dtype, device=x.device))


def valid_mask(target: torch.Tensor, ignore_index: int) -> torch.Tensor:
    return target != ignore_index


def one_hot(labels: torch.Tensor, valid: torch.Tensor, K: int, dtype=torch.bool) -> torch.Tensor:
    """(B, H, W) labels -> (B, K, H, W) one-hot, all zeros where not valid. A comparison
    with arange(K) writes the (B, K, H, W) layout directly (F.one_hot is channels-last)."""
    ids = torch.arange(K, device=labels.device).view(1, K, 1, 1)
    oh = (labels.unsqueeze(1) == ids) & valid.unsqueeze(1)
    return oh if dtype == torch.bool else oh.to(dtype)


def label_distances(labels: torch.Tensor, valid: torch.Tensor, K: int
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Distances from every pixel to the regions of a label map, in K + 1 transforms.

    Returns (to_class, inside, largest):
      to_class[b, k] = distance from each pixel to the nearest pixel of class k: d_out of
                       class k outside it, 0 on it, +inf everywhere when k is absent from
                       image b;
      inside[b]      = at a pixel of class k, the distance to the nearest pixel that is not
                       k (d_in of its own class; +inf when nothing else is in the image);
      largest[b]     = the largest finite distance of image b's maps (0 if none).
    An invalid pixel is its own label K, so it is "not k" for every class; the values at
    invalid pixels are not meaningful. d_in of a pixel's own class is its smallest distance
    to any other label: K + 1 transforms instead of 2K.
    """
    lab = torch.where(valid, labels.long(), torch.full((), K, device=labels.device))
    ids = torch.arange(K + 1, device=labels.device).view(1, -1, 1, 1)
    own = lab.unsqueeze(1) == ids
    to_label = distance_transform(~own)  # zero pixels = label j
    # A label absent from an image has an infinite map everywhere (the op's contract: no
    # zero pixel -> +inf), so per-map maxima tell the finite maps apart.
    largest = finite_or(to_label.amax(dim=(2, 3)), 0.0).amax(dim=1)
    inside = to_label.masked_fill(own, float("inf")).amin(dim=1)
    return to_label[:, :K], inside, largest


def finite_or(x: torch.Tensor, value: float) -> torch.Tensor:
    return torch.where(torch.isfinite(x), x, torch.full((), value, dtype=x.dtype, device=x.device))


def reduce_pixels(per_pixel: torch.Tensor, valid: torch.Tensor, reduction: str,
                  denom: torch.Tensor | None = None) -> torch.Tensor:
    """per_pixel (B, H, W), already 0 on invalid pixels. "mean" divides by the number of
    valid pixels (or `denom`); with none valid it returns 0 with a zero gradient."""
    if reduction == "none":
        return per_pixel
    total = per_pixel.sum()
    if reduction == "sum":
        return total
    if denom is None:
        denom = valid.sum().to(per_pixel.dtype)
    return safe_div(total, denom)


def safe_div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num / den where den > 0, else 0; the gradient stays finite either way."""
    pos = den > 0
    return torch.where(pos, num / torch.where(pos, den, torch.ones_like(den)), torch.zeros_like(num))


def zero_with_grad(logits: torch.Tensor) -> torch.Tensor:
    """A 0 that is still connected to the graph, so .backward() works on an all-ignored batch."""
    return (logits * 0).sum()
