"""Boundary IoU (Cheng, Girshick, Dollar, Berg & Kirillov 2021, "Boundary IoU: Improving
object-centric image segmentation evaluation", CVPR), batched, per class, in torch."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .confusion import _nanmean, check_ranges, pred_labels


def boundary_width(H: int, W: int, dilation_ratio: float = 0.02) -> int:
    """d = max(1, round(dilation_ratio * image diagonal)), as in the paper's code."""
    return max(1, round(dilation_ratio * math.hypot(H, W)))


def mask_boundary(mask: torch.Tensor, d: int) -> torch.Tensor:
    """The inner band of width d of boolean masks (..., H, W): mask minus its erosion by d
    iterations of a 3x3 square, pixels outside the image counting as background (the
    paper pads with one zero pixel before cv2.erode, so a mask cut by the image border has
    a boundary there).

    d iterations of a 3x3 erosion equal one (2d+1) x (2d+1) square erosion (the Minkowski
    sum of d 3x3 squares), and a square is separable: a max-pool of the inverted mask along
    rows, then along columns, with the inverted mask padded by ones (background) -- not
    max_pool2d's own padding, which ignores the outside instead.
    """
    lead, (H, W) = mask.shape[:-2], mask.shape[-2:]
    inv = (~mask.reshape(-1, 1, H, W)).to(torch.float32)
    inv = F.pad(inv, (d, d, d, d), value=1.0)
    inv = F.max_pool2d(inv, (1, 2 * d + 1), stride=1)
    inv = F.max_pool2d(inv, (2 * d + 1, 1), stride=1)
    eroded = inv.reshape(*lead, H, W) == 0
    return mask & ~eroded


@torch.no_grad()
def boundary_iou(pred: torch.Tensor, target: torch.Tensor, *, dilation_ratio: float = 0.02,
                 num_classes: int | None = None, ignore_index: int = 255) -> dict:
    """Boundary IoU of each class over a batch.

    pred: logits (B, K, H, W) or labels (B, H, W) (then num_classes is required); target
    (B, H, W). One image as the paper's code takes it: labels (H, W) (or logits (K, H, W))
    with target (H, W), the same as a batch of one. For class k and image b,
    G = (target == k), P = (pred == k); their bands
    are G and P minus their erosions by d = max(1, round(dilation_ratio * sqrt(H^2 + W^2)))
    pixels (see mask_boundary). Pixels whose target is ignore_index belong to no class (in
    both masks) and are not counted; so do pixels whose logits are NaN or inf (nodata:
    their argmax would be an accidental class), counted in "nonfinite_pixels". Then,
    summed over the batch,

      intersection_k = |band(G) & band(P)|,  union_k = |band(G) | band(P)|,
      per_class_k    = intersection_k / union_k   (NaN when union_k = 0: class absent
                                                   from both)
      mean           = mean of per_class over the non-NaN classes (NaN if none)

    Returns {"per_class": (K,) float64 CPU tensor, "mean": float, "intersection": (K,),
    "union": (K,) int64 CPU tensors (sum these over batches to accumulate a dataset score),
    "nonfinite_pixels": int}.
    Runs on the tensors' device.
    """
    pred, target, K, finite = pred_labels(pred, target, num_classes)
    if not (isinstance(dilation_ratio, (int, float)) and dilation_ratio >= 0):
        raise ValueError(f"dilation_ratio must be a non-negative number, got {dilation_ratio!r}")
    valid = target != ignore_index
    check_ranges(pred, target, valid, K, ignore_index)
    nonfinite = 0
    if finite is not None:
        nonfinite = int((valid & ~finite).sum())
        valid = valid & finite
    H, W = target.shape[-2:]
    d = boundary_width(H, W, dilation_ratio)
    ids = torch.arange(K, device=target.device).view(1, K, 1, 1)
    v = valid.unsqueeze(1)
    g = mask_boundary((target.unsqueeze(1) == ids) & v, d)
    p = mask_boundary((pred.unsqueeze(1) == ids) & v, d)
    inter = (g & p).sum(dim=(0, 2, 3)).cpu()
    union = (g | p).sum(dim=(0, 2, 3)).cpu()
    per_class = torch.full((K,), float("nan"), dtype=torch.float64)
    pos = union > 0
    per_class[pos] = inter[pos].double() / union[pos].double()
    return {"per_class": per_class, "mean": _nanmean(per_class), "intersection": inter, "union": union,
            "nonfinite_pixels": nonfinite}
