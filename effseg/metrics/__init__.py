"""Segmentation metrics, computed on the tensors' device.

- confusion.py:    SegMetrics (streaming confusion matrix: IoU, F1, OA, precision, recall)
- boundary_iou.py: boundary_iou (Cheng et al. 2021)
"""
from .boundary_iou import boundary_iou, mask_boundary
from .confusion import SegMetrics, scores

__all__ = ["SegMetrics", "boundary_iou", "mask_boundary", "scores"]
