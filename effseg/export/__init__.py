"""Export: ONNX (standard-op decompositions of effseg's custom ops)."""
from .onnx import decomposition_table, export_onnx, onnx_op_types

__all__ = ["decomposition_table", "export_onnx", "onnx_op_types"]
