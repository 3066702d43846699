"""Export: ONNX (standard-op decompositions of effseg's custom ops), opset 17/18."""
from .onnx import decomposition_table, export_onnx, onnx_op_types
from .to_onnx import ExportReport, check_parity, to_onnx

__all__ = ["ExportReport", "check_parity", "decomposition_table", "export_onnx", "onnx_op_types", "to_onnx"]
