"""Knowledge-distillation losses for segmentation: student logits against a teacher's.

- LogitKD:       per-pixel Hinton KD (tau^2 KL), averaged over valid pixels
- ChannelWiseKD: channel-wise distillation, CWD (Shu et al., ICCV 2021)
- BoundaryKD:    logit KD split into an edge band and the body of the ground truth's
                 regions, each with its own weight, in the spirit of BPKD (arXiv 2306.08075)

Every loss takes (student (B, K, h, w), teacher (B, K, H, W)[, target (B, h, w)]); the
teacher is detached and, when its size differs, resized (bilinear) to the student's.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import _common as C


def _check_tau(tau) -> float:
    if not (isinstance(tau, (int, float)) and 0 < float(tau) < float("inf")):
        raise ValueError(f"tau must be a positive finite number, got {tau!r}")
    return float(tau)


def _pair(student, teacher) -> tuple[torch.Tensor, torch.Tensor]:
    for name, x in (("student", student), ("teacher", teacher)):
        if not isinstance(x, torch.Tensor) or not x.dtype.is_floating_point or x.dim() != 4:
            raise ValueError(f"{name} must be floating-point logits (B, K, H, W), got "
                             f"{type(x).__name__ if not isinstance(x, torch.Tensor) else tuple(x.shape)}")
    if student.shape[:2] != teacher.shape[:2]:
        raise ValueError(f"teacher logits {tuple(teacher.shape)} and student logits {tuple(student.shape)} must "
                         "agree in batch and classes (B, K)")
    s = C.compute_dtype(student)
    t = teacher.detach().to(s.dtype)
    if t.shape[-2:] != s.shape[-2:]:
        t = F.interpolate(t, size=s.shape[-2:], mode="bilinear", align_corners=False)
    return s, t


def _valid(target, student, ignore_index: int) -> torch.Tensor:
    B, _, H, W = student.shape
    if target is None:
        return torch.ones(B, H, W, dtype=torch.bool, device=student.device)
    if not isinstance(target, torch.Tensor) or tuple(target.shape) != (B, H, W):
        raise ValueError(f"target must be a (B, H, W) = {(B, H, W)} tensor matching the student logits, got "
                         f"{tuple(target.shape) if isinstance(target, torch.Tensor) else type(target).__name__}")
    return target != ignore_index


def pixel_kl(student: torch.Tensor, teacher: torch.Tensor, tau: float) -> torch.Tensor:
    """(B, H, W): tau^2 * KL(softmax(t / tau) || softmax(s / tau)) over the class axis."""
    log_p_t = F.log_softmax(teacher / tau, dim=1)
    log_p_s = F.log_softmax(student / tau, dim=1)
    return (tau * tau) * (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1)


class LogitKD(nn.Module):
    """L = mean over valid pixels x of tau^2 * KL(softmax(z_T(x)/tau) || softmax(z_S(x)/tau)).

    Valid: target != ignore_index (every pixel when no target is given). No valid pixel:
    0 with a zero gradient.
    """

    def __init__(self, tau: float = 1.0, ignore_index: int = 255):
        super().__init__()
        self.tau = _check_tau(tau)
        self.ignore_index = int(ignore_index)

    def forward(self, student, teacher, target=None) -> torch.Tensor:
        s, t = _pair(student, teacher)
        valid = _valid(target, s, self.ignore_index)
        kl = pixel_kl(s, t, self.tau) * valid
        return C.reduce_pixels(kl, valid, "mean")


class ChannelWiseKD(nn.Module):
    """CWD (Shu et al., ICCV 2021): each channel c of image n becomes a distribution over
    its H*W positions, softmax(z_{n,c} / tau); L = tau^2 / (C * N) * sum_{n,c}
    KL(T_{n,c} || S_{n,c}) with N the batch size and C the classes.

    With a target, ignored pixels are taken out of both distributions (probability 0
    before the spatial softmax); an image channel with no valid pixel contributes 0.
    """

    def __init__(self, tau: float = 1.0, ignore_index: int = 255):
        super().__init__()
        self.tau = _check_tau(tau)
        self.ignore_index = int(ignore_index)

    def forward(self, student, teacher, target=None) -> torch.Tensor:
        s, t = _pair(student, teacher)
        N, K = s.shape[:2]
        valid = _valid(target, s, self.ignore_index).flatten(1).unsqueeze(1)  # (N, 1, HW)
        s, t = (s / self.tau).flatten(2), (t / self.tau).flatten(2)
        # Masked positions get a logit far below every real one: exp() is exactly 0 there,
        # and a channel with no valid position becomes uniform in both (KL 0), where -inf
        # would give NaN values and gradients.
        floor = torch.minimum(s.detach().amin(), t.amin()) - 1e4
        s, t = s.masked_fill(~valid, floor), t.masked_fill(~valid, floor)
        log_p_t = F.log_softmax(t, dim=2)
        log_p_s = F.log_softmax(s, dim=2)
        term = log_p_t.exp() * (log_p_t - log_p_s)
        return (self.tau ** 2) * term.sum() / (K * N)


def edge_band(target: torch.Tensor, num_classes: int, band: float, ignore_index: int = 255) -> torch.Tensor:
    """(B, H, W) bool: valid pixels within `band` pixels (Euclidean) of a pixel of another
    label, ignored pixels counting as a label of their own (so a nodata border is an edge).
    From an exact distance transform of the target (effseg.ops), on its device."""
    valid = target != ignore_index
    _, inside, _ = C.label_distances(target, valid, num_classes)
    return valid & (inside <= band)


class BoundaryKD(nn.Module):
    """Logit KD on the edge band and on the body of the ground truth's regions, separately.

    edge = valid pixels within `band` pixels of another label (edge_band), body = the other
    valid pixels. L = edge_weight * mean_{x in edge} kl(x) + body_weight * mean_{x in body}
    kl(x), kl the per-pixel tau^2 KL of LogitKD; a region with no pixel contributes 0.
    Following BPKD, the edge term teaches the student the teacher's class decisions where
    classes meet, the body term the shape of the regions.
    """

    def __init__(self, band: float = 3.0, edge_weight: float = 1.0, body_weight: float = 1.0, tau: float = 1.0,
                 ignore_index: int = 255):
        super().__init__()
        if not (isinstance(band, (int, float)) and band >= 1):
            raise ValueError(f"band must be a number of pixels >= 1, got {band!r}")
        for name, v in (("edge_weight", edge_weight), ("body_weight", body_weight)):
            if not (isinstance(v, (int, float)) and 0 <= float(v) < float("inf")):
                raise ValueError(f"{name} must be finite and non-negative, got {v!r}")
        self.band, self.edge_weight, self.body_weight = float(band), float(edge_weight), float(body_weight)
        self.tau = _check_tau(tau)
        self.ignore_index = int(ignore_index)
        self.last_terms: dict = {}

    def forward(self, student, teacher, target) -> torch.Tensor:
        s, t = _pair(student, teacher)
        if target is None:
            raise ValueError("target is required: BoundaryKD finds the edge band in the ground truth")
        valid = _valid(target, s, self.ignore_index)
        with torch.no_grad():
            edge = edge_band(target, s.shape[1], self.band, self.ignore_index)
        body = valid & ~edge
        kl = pixel_kl(s, t, self.tau)
        e = C.reduce_pixels(kl * edge, edge, "mean")
        b = C.reduce_pixels(kl * body, body, "mean")
        self.last_terms = {"edge": e.detach(), "body": b.detach()}
        return self.edge_weight * e + self.body_weight * b
