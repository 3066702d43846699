"""effseg's operations: each has a `_ref` (plain PyTorch, the definition of truth)."""
from . import _flops  # noqa: F401  (FlopCounterMode formulas for the custom ops)
from .cross_selective_scan import cross_merge_ref, cross_scan_ref, cross_selective_scan, cross_selective_scan_ref
from .depthwise_conv2d import depthwise_conv2d, depthwise_conv2d_ref
from .distance_transform import distance_transform, distance_transform_ref, signed_distance
from .fold_batchnorm import fold_batchnorm
from .linear_attention import linear_attention
from .linear_attention_ref import linear_attention_ref
from .selective_scan import selective_scan
from .selective_scan_chunked import selective_scan_chunked
from .selective_scan_ref import selective_scan_ref
from .winograd_conv2d import winograd_conv2d, winograd_conv2d_ref, winograd_weight

__all__ = ["cross_merge_ref", "cross_scan_ref", "cross_selective_scan",
           "cross_selective_scan_ref", "depthwise_conv2d", "depthwise_conv2d_ref",
           "distance_transform", "distance_transform_ref", "fold_batchnorm",
           "linear_attention", "linear_attention_ref", "selective_scan",
           "selective_scan_chunked", "selective_scan_ref", "signed_distance",
           "winograd_conv2d", "winograd_conv2d_ref", "winograd_weight"]
