"""Lossd, the distance loss of Ma, Ren, Li & Chen (2025), "Improving remote sensing image
semantic segmentation based on distance loss" (Acta Aeronautica et Astronautica Sinica 47(8),
DOI 10.7527/S1000-6893.2025.32780). Only its abstract and a summary are available, so the
construction below follows what is known of it and fixes the rest explicitly (see
DistanceLoss's docstring)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from . import _common as C


class DistanceLoss(nn.Module):
    """Lossd: a boundary-aware loss that charges each wrongly labelled pixel by how far it
    lies from where its class really is, with separate over- and under-segmentation terms.

    For image b, class k and valid pixel x (target != ignore_index):

      g_k(x)     = 1 if target(x) == k else 0                     (ground truth one-hot)
      P_k(x)     = straight-through hard prediction: forward value 1 if argmax(logits(x)) == k
                   else 0, gradient that of softmax(logits)_k(x)
      d_in_k(x)  = for x in class k: distance to the nearest pixel not of class k
                   (>= 1; the "inside" distance of the ground truth)
      d_out_k(x) = for x outside class k: distance to the nearest pixel of class k
                   (>= 1; the "overshoot" distance, the negative part of the signed map
                   D_k = d_in_k * g_k - d_out_k * (1 - g_k))
      M_b        = the largest distance in image b: max over all pixels x and every label j
                   present (the classes, and "ignored" as one more label) of the distance
                   from x to the nearest pixel labelled j; at least 1. Every d_in and d_out
                   is one of these distances or smaller, so c(d) <= 1
      c(d)       = log1p(min(d, M_b)) / log1p(M_b)      (in [0, 1]; an infinite distance,
                   i.e. the class is absent from the image or fills it, costs 1)

      over_bk  = (1 / N_b) * sum_x (1 - g_k) * P_k * c(d_out_k)     false positives of k
      under_bk = (1 / N_b) * sum_x g_k * (1 - P_k) * c(d_in_k)      false negatives of k
      L_bk     = over_weight * over_bk + under_weight * under_bk

      S_b = classes present in the prediction or the ground truth of image b (valid pixels)
      L_b = sum_{k in S_b} w_k * L_bk / sum_{k in S_b} w_k          (w = class_weights, or 1)
      loss = mean of L_b over the images with valid pixels  (reduction "mean"),
             sum of L_b (reduction "sum"), or the vector L_b (reduction "none")

    N_b is the number of valid pixels of image b; an image with no valid pixel (or whose
    present classes all have weight 0) has L_b = 0 and is left out of the mean.

    Design decisions (only a summary of the paper is available):
    - The summary's error |P_k * D_k - g_k * d_in_k| equals (1 - g_k) P_k d_out_k +
      g_k (1 - P_k) d_in_k for any P_k in [0, 1]: the two terms above are that error, split
      so that over- and under-segmentation can be weighted separately.
    - log1p is applied to the distance (c(d) above) rather than to the whole error. At the
      hard prediction the value is identical (every pixel has one term at most and
      log1p(0) = 0); the gradient differs: log1p of the error would give a correctly
      labelled pixel a gradient of d and a wrong one only d / (1 + d), so the gradient here is
      that of the linear form: d L_b / d softmax_k(x) = w_k / (N_b sum_{S_b} w) *
      (over_weight (1 - g_k) c(d_out_k) - under_weight g_k c(d_in_k)), with S_b held fixed.
    - Normalisation by the largest distance is per image (all classes together), so the
      same distance costs the same for every class of an image.
    - Ignored pixels belong to no class in the distance maps (an ignored region borders its
      neighbours), are left out of every sum, and their logits receive no gradient.
    - Distance maps come from the target on every call: K + 1 maps (one per class, one for
      the ignored pixels) in one effseg.ops.distance_transform call on the logits' device,
      no gradient; d_in of a pixel is its distance to the nearest pixel of another label.
    """

    def __init__(self, ignore_index: int = 255, class_weights: Sequence[float] | None = None,
                 over_weight: float = 1.0, under_weight: float = 1.0, reduction: str = "mean"):
        super().__init__()
        self.ignore_index = int(ignore_index)
        self.reduction = C.check_reduction(reduction)
        for name, v in (("over_weight", over_weight), ("under_weight", under_weight)):
            if not (float(v) >= 0 and float(v) < float("inf")):
                raise ValueError(f"{name} must be finite and non-negative, got {v!r}")
        self.over_weight, self.under_weight = float(over_weight), float(under_weight)
        self.register_buffer("class_weights", C.weight_buffer(class_weights, "class_weights"))

    def terms(self, logits: torch.Tensor, target: torch.Tensor) -> dict:
        """The forward values over (B, K), under (B, K) (the per-class terms above, before
        the term weights), present (B, K) bool and n_valid (B,); no gradient."""
        C.check_inputs(logits, target, self.ignore_index)
        with torch.no_grad():
            t = self._terms(C.valid_logits(logits, target, self.ignore_index).detach(), target)
        return {k: t[k] for k in ("over", "under", "present", "n_valid")}

    def _terms(self, x: torch.Tensor, target: torch.Tensor) -> dict:
        B, K = x.shape[:2]
        valid = C.valid_mask(target, self.ignore_index)
        pred = C.argmax_channels(x)
        to_class, inside, big = C.label_distances(target, valid, K)
        # forward() turns to_class, a fresh op output, into the coefficient map in place.
        to_class, inside = to_class.to(x.dtype), inside.to(x.dtype)
        big = big.to(x.dtype).clamp_min(1)
        inv_scale = 1 / torch.log1p(big)  # (B,)
        v = big.view(B, 1, 1)

        # Forward values from the hard labels: each wrong pixel costs c(distance to the
        # predicted class) to that class (over) and c(inside distance) to its true class
        # (under); summed per (image, class) with one bincount.
        wrong = valid & (pred != target)
        safe_t = torch.where(valid, target.long(), 0)
        d_pred = to_class.gather(1, pred.unsqueeze(1)).squeeze(1)
        scale = inv_scale.view(B, 1, 1)
        c_pred = torch.log1p(torch.minimum(d_pred, v)) * scale * wrong
        c_in = torch.log1p(torch.minimum(inside, v)) * scale
        base = torch.arange(B, device=x.device).view(B, 1, 1) * K
        at_pred, at_true = (base + pred).flatten(), (base + safe_t).flatten()
        sums = torch.bincount(torch.cat((at_pred, at_true + B * K)),
                              weights=torch.cat((c_pred.flatten(), (c_in * wrong).flatten())),
                              minlength=2 * B * K).to(x.dtype).view(2, B, K)
        # Classes present in the prediction or the target; invalid pixels go to a spare bin.
        v2 = valid.flatten().repeat(2)
        present = torch.bincount(torch.where(v2, torch.cat((at_pred, at_true)), B * K),
                                 minlength=B * K + 1)[: B * K].view(B, K) > 0
        n_valid = valid.sum(dim=(1, 2)).to(x.dtype)
        nv = n_valid.view(B, 1)
        return {"over": C.safe_div(sums[0], nv), "under": C.safe_div(sums[1], nv), "present": present,
                "n_valid": n_valid, "valid": valid, "to_class": to_class, "c_in": c_in,
                "inv_scale": inv_scale, "big": big, "safe_t": safe_t}

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        C.check_inputs(logits, target, self.ignore_index)
        x = C.valid_logits(logits, target, self.ignore_index)
        B, K = x.shape[:2]
        with torch.no_grad():
            t = self._terms(x.detach(), target)
            w = C.class_weights(self.class_weights, K, x, "class_weights")
            wk = t["present"].to(x.dtype) * (1 if w is None else w)
            den = wk.sum(dim=1)
            value = C.safe_div((wk * (self.over_weight * t["over"] + self.under_weight * t["under"])).sum(dim=1), den)
            # d L_b / d softmax_k(x) (see the docstring), built in place in the distance
            # maps: the over part everywhere (0 on a pixel's own class, where d_out = 0) ...
            norm = C.safe_div(torch.ones_like(den), t["n_valid"] * den)  # 1 / (N_b sum_S w)
            wcls = torch.ones(K, dtype=x.dtype, device=x.device) if w is None else w
            coeff = t["to_class"]
            torch.minimum(coeff, t["big"].view(B, 1, 1, 1), out=coeff)
            coeff.log1p_()
            coeff.mul_((self.over_weight * wcls * (norm * t["inv_scale"]).view(B, 1)).view(B, K, 1, 1))
            # ... and the under part on the own class (written over that 0).
            own = (-self.under_weight) * wcls[t["safe_t"]] * t["c_in"] * norm.view(B, 1, 1)
            coeff.scatter_(1, t["safe_t"].unsqueeze(1), own.unsqueeze(1))
            coeff.masked_fill_(~t["valid"].unsqueeze(1), 0)
        # Straight-through: the value is the hard one, the gradient that of sum(coeff * softmax).
        s = (x.softmax(dim=1) * coeff).sum(dim=(1, 2, 3))
        per_image = value + (s - s.detach())
        if self.reduction == "none":
            return per_image
        if self.reduction == "sum":
            return per_image.sum()
        counted = ((t["n_valid"] > 0) & (den > 0)).sum().to(per_image.dtype)
        return C.safe_div(per_image.sum(), counted)
