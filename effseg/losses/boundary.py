"""Distance-map boundary losses: Kervadec et al.'s boundary loss and Karimi & Salcudean's
Hausdorff-distance loss, both on effseg.ops distance maps computed on the logits' device."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..ops import signed_distance
from . import _common as C


class BoundaryLoss(nn.Module):
    """Boundary loss, Kervadec et al. 2019 ("Boundary loss for highly unbalanced
    segmentation", MIDL 2019 / MedIA 2021):

      phi_k = signed_distance(one-hot target)_k   (> 0 outside class k, <= 0 inside,
              0 on its inner boundary; 0 everywhere for a class absent from or filling
              the image)
      loss  = mean over valid pixels x and classes k in `classes` of softmax_k(x) * phi_k(x)

    Distances are in pixels, so the value scales with the image size; the loss is negative
    at a good prediction and is meant to be mixed with a region loss under a growing weight
    (JointLoss with the Rebalance schedule, as in the paper). `classes` selects the classes
    summed (the paper's `idc`; default all). Ignored pixels belong to no class in phi and are
    left out of the mean. reduction "none" gives the (B, H, W) per-pixel class mean (0 on
    ignored pixels), "sum" its sum over valid pixels.
    """

    def __init__(self, ignore_index: int = 255, classes: Sequence[int] | None = None,
                 reduction: str = "mean"):
        super().__init__()
        self.ignore_index = int(ignore_index)
        self.classes = C.check_classes(classes)
        self.reduction = C.check_reduction(reduction)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        C.check_inputs(logits, target, self.ignore_index)
        x = C.valid_logits(logits, target, self.ignore_index)
        K = x.shape[1]
        idx = C.class_index(self.classes, K, x.device)
        valid = C.valid_mask(target, self.ignore_index)
        with torch.no_grad():
            phi = C.finite_or(signed_distance(C.one_hot(target, valid, K)).to(x.dtype), 0.0)
        prob = x.softmax(dim=1)
        if idx is not None:
            prob, phi = prob.index_select(1, idx), phi.index_select(1, idx)
        per_pixel = (prob * phi).mean(dim=1) * valid
        return C.reduce_pixels(per_pixel, valid, self.reduction)


class HausdorffDTLoss(nn.Module):
    """Hausdorff-distance loss, distance-transform form (Karimi & Salcudean 2019, "Reducing
    the Hausdorff distance in medical image segmentation with convolutional neural
    networks", IEEE TMI 39(2)):

      p_k   = softmax(logits)_k,  g_k = one-hot target
      d_G_k = distance from each pixel to the boundary of class k in the target
              (distance to the nearest non-k pixel inside k, to the nearest k pixel outside;
              0 everywhere when k is absent from or fills the image, as in the paper's code)
      d_P_k = the same for the current hard prediction argmax(logits)
      loss  = mean over valid pixels x and classes k in `classes` of
              (p_k - g_k)^2 * (d_G_k^alpha + d_P_k^alpha)

    alpha = 2 as in the paper. The distance maps carry no gradient. The paper thresholds a
    binary prediction at 0.5; with K classes the argmax one-hot plays that role. Distances
    are in pixels (d^2 reaches the squared image diagonal), so the value is large; mix it
    with a region loss. Ignored pixels belong to no class in either map and are left out of
    the mean; reductions as in BoundaryLoss.
    """

    def __init__(self, alpha: float = 2.0, ignore_index: int = 255,
                 classes: Sequence[int] | None = None, reduction: str = "mean"):
        super().__init__()
        if not (float(alpha) > 0 and float(alpha) < float("inf")):
            raise ValueError(f"alpha must be a positive number, got {alpha!r}")
        self.alpha = float(alpha)
        self.ignore_index = int(ignore_index)
        self.classes = C.check_classes(classes)
        self.reduction = C.check_reduction(reduction)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        C.check_inputs(logits, target, self.ignore_index)
        x = C.valid_logits(logits, target, self.ignore_index)
        B, K = x.shape[:2]
        idx = C.class_index(self.classes, K, x.device)
        valid = C.valid_mask(target, self.ignore_index)
        g = C.one_hot(target, valid, K)
        with torch.no_grad():
            pred = C.argmax_channels(x.detach())
            # Target and prediction in one batched transform.
            labels = torch.cat((target.long(), pred))
            to_class, inside, _ = C.label_distances(labels, valid.repeat(2, 1, 1), K)
            member = torch.cat((g, C.one_hot(pred, valid, K)))
            d = C.finite_or(torch.where(member, inside.unsqueeze(1), to_class).to(x.dtype), 0.0)
            d = d.pow(self.alpha)
            dist = d[:B] + d[B:]
        err = (x.softmax(dim=1) - g.to(x.dtype)).square()
        if idx is not None:
            err, dist = err.index_select(1, idx), dist.index_select(1, idx)
        per_pixel = (err * dist).mean(dim=1) * valid
        return C.reduce_pixels(per_pixel, valid, self.reduction)
