"""Segmentation losses: logits (B, K, H, W), integer targets (B, H, W) with ignore_index,
computed on the logits' device.

- region.py:   CrossEntropyLoss, DiceLoss, FocalLoss
- distance.py: DistanceLoss (Lossd, Ma et al. 2025)
- boundary.py: BoundaryLoss (Kervadec et al. 2019), HausdorffDTLoss (Karimi & Salcudean 2019)
- joint.py:    JointLoss and its weight schedules (LinearRamp, Rebalance)
- distill.py:  knowledge distillation: LogitKD, ChannelWiseKD (CWD), BoundaryKD (BPKD-style)
"""
from .boundary import BoundaryLoss, HausdorffDTLoss
from .distance import DistanceLoss
from .distill import BoundaryKD, ChannelWiseKD, LogitKD
from .joint import JointLoss, LinearRamp, Rebalance
from .region import CrossEntropyLoss, DiceLoss, FocalLoss

__all__ = [
    "BoundaryKD",
    "BoundaryLoss",
    "ChannelWiseKD",
    "CrossEntropyLoss",
    "DiceLoss",
    "DistanceLoss",
    "FocalLoss",
    "HausdorffDTLoss",
    "JointLoss",
    "LogitKD",
    "LinearRamp",
    "Rebalance",
]
