"""Streaming confusion matrix and the segmentation scores derived from it."""
from __future__ import annotations

import torch

from .._labels import argmax_channels


def pred_labels(pred: torch.Tensor, target: torch.Tensor, num_classes: int | None):
    """Checks pred against target and returns (labels, target, num_classes, finite).

    pred: logits (B, K, H, W) (argmax taken) or labels (B, H, W), with target (B, H, W); or
    one image: logits (K, H, W) or labels (H, W) with target (H, W), given a batch of one.
    finite: (B, H, W) bool, False where a logit is NaN or +-inf (None for labels). The
    argmax of such a pixel is whichever channel holds the NaN, a class picked by accident:
    callers treat those pixels as nodata, like target == ignore_index.
    """
    if not isinstance(pred, torch.Tensor):
        raise TypeError(f"pred must be a torch.Tensor, got {type(pred).__name__}")
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be a torch.Tensor, got {type(target).__name__}")
    if target.dtype.is_floating_point or target.dtype.is_complex or target.dtype == torch.bool:
        raise TypeError(f"target must be an integer tensor of class indices, got {target.dtype}")
    if target.dim() == 2:  # one image
        if pred.dim() not in (2, 3):
            raise ValueError(f"with target (H, W), pred must be logits (K, H, W) or labels (H, W), "
                             f"got shape {tuple(pred.shape)}")
        pred, target = pred.unsqueeze(0), target.unsqueeze(0)
    elif target.dim() != 3:
        raise ValueError(f"target must be (B, H, W) or one image (H, W), got shape {tuple(target.shape)}")
    finite = None
    if pred.dim() == 4:
        if not pred.dtype.is_floating_point:
            raise TypeError(f"pred must be float logits (B, K, H, W) or integer labels (B, H, W), got {pred.dtype} 4-D")
        if num_classes is not None and pred.shape[1] != num_classes:
            raise ValueError(f"pred has {pred.shape[1]} classes (dim 1) but num_classes is {num_classes}")
        num_classes = pred.shape[1]
        finite = torch.isfinite(pred).all(dim=1)
        pred = argmax_channels(pred)
    elif pred.dim() == 3:
        if pred.dtype.is_floating_point or pred.dtype.is_complex:
            raise TypeError(f"pred labels (B, H, W) must be an integer tensor, got {pred.dtype}")
        if num_classes is None:
            raise ValueError("num_classes is required when pred holds labels (B, H, W)")
    else:
        raise ValueError(f"pred must be logits (B, K, H, W) or labels (B, H, W), got shape {tuple(pred.shape)}")
    if pred.shape != target.shape:
        raise ValueError(f"pred labels have shape {tuple(pred.shape)} but target has {tuple(target.shape)}")
    if pred.device != target.device:
        raise ValueError(f"pred is on {pred.device} but target is on {target.device}; move them to one device")
    return pred, target, int(num_classes), finite


def check_ranges(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, K: int, ignore_index: int) -> None:
    bad_t = valid & ((target < 0) | (target >= K))
    bad_p = valid & ((pred < 0) | (pred >= K))
    if bool((bad_t | bad_p).any()):
        which = "target" if bool(bad_t.any()) else "pred"
        raise ValueError(f"{which} has labels outside [0, {K}) (other than ignore_index={ignore_index} in target)")


def _div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    out = torch.full_like(num, float("nan"))
    pos = den > 0
    out[pos] = num[pos] / den[pos]
    return out


def _nanmean(x: torch.Tensor) -> float:
    ok = ~torch.isnan(x)
    return float(x[ok].mean()) if bool(ok.any()) else float("nan")


def scores(cm: torch.Tensor) -> dict:
    """Scores of a (K, K) confusion matrix (rows: target, columns: prediction).

    Per class (float64 tensors of length K, on the CPU): IoU = TP / (TP + FP + FN),
    F1 = 2 TP / (2 TP + FP + FN), precision = TP / (TP + FP), recall = TP / (TP + FN). A ratio
    whose denominator is 0 is NaN: IoU and F1 for a class absent from both prediction and
    target, precision for a class never predicted, recall for a class absent from the
    target. The means (mIoU, mF1, mPrecision, mRecall; Python floats) skip NaN classes (NaN
    if every class is NaN). OA = trace / total (NaN when nothing was counted).
    """
    cm = cm.detach().to("cpu", torch.float64)
    tp = cm.diagonal()
    fp = cm.sum(dim=0) - tp
    fn = cm.sum(dim=1) - tp
    iou = _div(tp, tp + fp + fn)
    f1 = _div(2 * tp, 2 * tp + fp + fn)
    precision = _div(tp, tp + fp)
    recall = _div(tp, tp + fn)
    total = cm.sum()
    return {
        "IoU": iou, "mIoU": _nanmean(iou),
        "F1": f1, "mF1": _nanmean(f1),
        "precision": precision, "mPrecision": _nanmean(precision),
        "recall": recall, "mRecall": _nanmean(recall),
        "OA": float(tp.sum() / total) if total > 0 else float("nan"),
        "confusion_matrix": cm.to(torch.int64),
    }


class SegMetrics:
    """Streaming confusion matrix for semantic segmentation.

    update(pred, target): pred is logits (B, K, H, W) (argmax taken) or labels (B, H, W);
    target (B, H, W) (or one image: (K, H, W) or (H, W) with (H, W)); pixels whose target is
    ignore_index are skipped. So are pixels whose logits are not all finite: argmax would
    give them the class of whichever channel holds the NaN, a silent wrong count. They are
    nodata (what a model outputs where the image had no data), so they are skipped rather
    than raised on, which would fail every scene with a nodata border; they are counted in
    `nonfinite` and compute()["nonfinite_pixels"], so a diverged model (NaN everywhere:
    nothing counted, mIoU NaN) is plain to see. The counting runs on
    the tensors' device (one torch.bincount); the matrix lives on `device` (default: the
    device of the first update) as int64, rows = target class, columns = predicted class.
    compute() returns the scores of `scores()` above; reset() clears; merge(other) adds
    another SegMetrics' counts; sync() sums the matrix over torch.distributed processes
    when a process group is initialised (a no-op otherwise; with NCCL the matrix must be on
    the process's GPU).
    """

    def __init__(self, num_classes: int, ignore_index: int = 255, device=None):
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        self.num_classes = num_classes
        self.ignore_index = int(ignore_index)
        self.device = None if device is None else torch.device(device)
        self.matrix: torch.Tensor | None = None
        self._nonfinite: torch.Tensor | None = None
        self.reset()

    @property
    def nonfinite(self) -> int:
        """Pixels with a valid target skipped because their logits were NaN or inf."""
        return 0 if self._nonfinite is None else int(self._nonfinite)

    def reset(self) -> None:
        self.matrix = None
        self._nonfinite = None
        if self.device is not None:
            self._zeros(self.device)

    def _zeros(self, device) -> torch.Tensor:
        if self.matrix is None:
            self.device = torch.device(device)
            self.matrix = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64, device=device)
            self._nonfinite = torch.zeros((), dtype=torch.int64, device=device)
        return self.matrix

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        K = self.num_classes
        pred, target, _, finite = pred_labels(pred, target, K)
        valid = target != self.ignore_index
        check_ranges(pred, target, valid, K, self.ignore_index)
        # Ignored pixels go to an extra bin that is dropped, nodata ones to another that
        # is counted apart (no data-dependent shapes, no extra sync).
        idx = torch.where(valid, target.long() * K + pred.long(), K * K + 1)
        if finite is not None:
            idx = torch.where(valid & ~finite, K * K, idx)
        counts = torch.bincount(idx.flatten(), minlength=K * K + 2)
        self._zeros(counts.device).add_(counts[: K * K].view(K, K).to(self.device))
        self._nonfinite.add_(counts[K * K].to(self.device))

    def merge(self, other: SegMetrics) -> SegMetrics:
        if not isinstance(other, SegMetrics):
            raise TypeError(f"other must be a SegMetrics, got {type(other).__name__}")
        if (other.num_classes, other.ignore_index) != (self.num_classes, self.ignore_index):
            raise ValueError(f"other counts {other.num_classes} classes (ignore_index {other.ignore_index}), "
                             f"this one {self.num_classes} (ignore_index {self.ignore_index})")
        if other.matrix is not None:
            self._zeros(other.matrix.device).add_(other.matrix.to(self.device))
            self._nonfinite.add_(other._nonfinite.to(self.device))
        return self

    def sync(self) -> SegMetrics:
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return self
        if self.matrix is None:  # every process must join the collective
            self._zeros("cuda" if dist.get_backend() == "nccl" else "cpu")
        both = torch.cat((self.matrix.flatten(), self._nonfinite.view(1)))  # one collective
        dist.all_reduce(both, op=dist.ReduceOp.SUM)
        self.matrix.copy_(both[:-1].view_as(self.matrix))
        self._nonfinite.copy_(both[-1])
        return self

    all_reduce = sync

    def compute(self) -> dict:
        """scores() of the matrix, plus nonfinite_pixels (see the class docstring)."""
        if self.matrix is None:
            out = scores(torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64))
        else:
            out = scores(self.matrix)
        out["nonfinite_pixels"] = self.nonfinite
        return out
