"""Export and deployment: ONNX (effseg's ops as standard ops), the TensorRT compatibility
check, INT8 Q/DQ quantisation, TensorRT engines, and deployment bundles."""
from .bundle import bundle_meta, default_palette, write_bundle
from .engine import (
           build_engine,
           builder_flags,
           parse_size,
           parse_version,
           profile_shapes,
)
from .onnx import decomposition_table, export_onnx, onnx_op_types
from .quantize import QuantReport, quantize
from .tensorrt_check import Finding, check_tensorrt, fatal, format_findings
from .to_onnx import ExportReport, check_onnx_parity, to_onnx

__all__ = [
           "ExportReport",
           "Finding",
           "QuantReport",
           "build_engine",
           "builder_flags",
           "bundle_meta",
           "check_onnx_parity",
           "check_tensorrt",
           "decomposition_table",
           "default_palette",
           "export_onnx",
           "fatal",
           "format_findings",
           "onnx_op_types",
           "parse_size",
           "parse_version",
           "profile_shapes",
           "quantize",
           "to_onnx",
           "write_bundle",
]
