"""Region losses: cross-entropy, soft Dice, focal; with ignore_index handled the same way as
the boundary losses (an all-ignored batch gives 0 and a zero gradient, never NaN)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import _common as C


class CrossEntropyLoss(nn.Module):
    """Pixel-wise cross-entropy with optional class weights and label smoothing.

    Same values as torch.nn.functional.cross_entropy (mean = sum of w[target] * loss over
    valid pixels divided by the sum of w[target]), except that a batch with no valid pixel
    gives 0 instead of NaN. reduction "none" gives (B, H, W), 0 on ignored pixels.
    """

    def __init__(self, weight: Sequence[float] | None = None, ignore_index: int = 255,
                 label_smoothing: float = 0.0, reduction: str = "mean"):
        super().__init__()
        if not 0.0 <= float(label_smoothing) <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
        self.ignore_index = int(ignore_index)
        self.label_smoothing = float(label_smoothing)
        self.reduction = C.check_reduction(reduction)
        self.register_buffer("weight", C.weight_buffer(weight, "weight"))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        C.check_inputs(logits, target, self.ignore_index)
        x = C.valid_logits(logits, target, self.ignore_index)
        w = C.class_weights(self.weight, x.shape[1], x, "weight")
        per_pixel = F.cross_entropy(x, target.long(), weight=w, ignore_index=self.ignore_index,
                                    label_smoothing=self.label_smoothing, reduction="none")
        valid = C.valid_mask(target, self.ignore_index)
        denom = None
        if w is not None and self.reduction == "mean":
            safe = torch.where(valid, target.long(), torch.zeros((), dtype=torch.long, device=x.device))
            denom = (w[safe] * valid).sum()
        return C.reduce_pixels(per_pixel, valid, self.reduction, denom)


class DiceLoss(nn.Module):
    """Soft multi-class Dice loss over the whole batch, as GeoSeg / pytorch-toolbelt's
    multiclass DiceLoss computes it:

      dice_k = (2 * sum p_k g_k + smooth) / (sum p_k + sum g_k + smooth)
               (sums over the valid pixels of every image; p = softmax(logits))
      loss   = mean over the classes k in `classes` that occur in the batch's target of
               (1 - dice_k)

    Classes absent from the target are left out of the mean (toolbelt zeroes them but still
    divides by K: its value is this one times present/K). smooth defaults to GeoSeg's 0.05.
    reduction "none" gives the (K,) per-class losses, 0 for classes absent from the target.
    """

    def __init__(self, smooth: float = 0.05, ignore_index: int = 255,
                 classes: Sequence[int] | None = None, reduction: str = "mean"):
        super().__init__()
        if not float(smooth) >= 0:
            raise ValueError(f"smooth must be non-negative, got {smooth!r}")
        self.smooth = float(smooth)
        self.ignore_index = int(ignore_index)
        self.classes = C.check_classes(classes)
        self.reduction = C.check_reduction(reduction, ("mean", "none"))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        C.check_inputs(logits, target, self.ignore_index)
        x = C.valid_logits(logits, target, self.ignore_index)
        K = x.shape[1]
        idx = C.class_index(self.classes, K, x.device)
        valid = C.valid_mask(target, self.ignore_index)
        p = x.softmax(dim=1) * valid.unsqueeze(1)
        g = C.one_hot(target, valid, K, x.dtype)
        inter = (p * g).sum(dim=(0, 2, 3))
        card = p.sum(dim=(0, 2, 3)) + g.sum(dim=(0, 2, 3))
        present = g.sum(dim=(0, 2, 3)) > 0
        if idx is not None:
            keep = torch.zeros(K, dtype=torch.bool, device=x.device)
            keep[idx] = True
            present = present & keep
        dice = C.safe_div(2 * inter + self.smooth, card + self.smooth)
        per_class = (1 - dice) * present
        if self.reduction == "none":
            return per_class
        return C.safe_div(per_class.sum(), present.sum().to(x.dtype))


class FocalLoss(nn.Module):
    """Multi-class focal loss (Lin et al. 2017, "Focal loss for dense object detection"):

      loss(x) = -alpha_t * (1 - p_t)^gamma * log p_t,  p_t = softmax(logits(x))[target(x)]

    alpha: None (1), a number, or one weight per class (alpha_t = alpha[target]). "mean" is
    the plain mean over valid pixels (not divided by the alpha sum); "none" gives (B, H, W).
    gamma = 0 with alpha None is cross-entropy. For 0 < gamma < 1 the factor's derivative is
    unbounded as p_t -> 1, so (1 - p_t) is clamped at float epsilon there.
    """

    def __init__(self, gamma: float = 2.0, alpha: float | Sequence[float] | None = None,
                 ignore_index: int = 255, reduction: str = "mean"):
        super().__init__()
        if not float(gamma) >= 0:
            raise ValueError(f"gamma must be non-negative, got {gamma!r}")
        self.gamma = float(gamma)
        self.ignore_index = int(ignore_index)
        self.reduction = C.check_reduction(reduction)
        self.alpha_scalar = None
        if alpha is not None and isinstance(alpha, (int, float)):
            if not float(alpha) >= 0:
                raise ValueError(f"alpha must be non-negative, got {alpha!r}")
            self.alpha_scalar = float(alpha)
            alpha = None
        self.register_buffer("alpha", C.weight_buffer(alpha, "alpha"))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        C.check_inputs(logits, target, self.ignore_index)
        x = C.valid_logits(logits, target, self.ignore_index)
        valid = C.valid_mask(target, self.ignore_index)
        safe = torch.where(valid, target.long(), torch.zeros((), dtype=torch.long, device=x.device))
        logpt = x.log_softmax(dim=1).gather(1, safe.unsqueeze(1)).squeeze(1)
        per_pixel = -logpt
        if self.gamma != 0:
            q = -torch.expm1(logpt)  # 1 - p_t without cancellation
            if self.gamma < 1:
                q = q.clamp_min(torch.finfo(x.dtype).eps)
            per_pixel = per_pixel * q.clamp_min(0).pow(self.gamma)
        a = C.class_weights(self.alpha, x.shape[1], x, "alpha")
        if a is not None:
            per_pixel = per_pixel * a[safe]
        if self.alpha_scalar is not None:
            per_pixel = per_pixel * self.alpha_scalar
        return C.reduce_pixels(per_pixel * valid, valid, self.reduction)
