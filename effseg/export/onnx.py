"""ONNX export of modules that call effseg's custom ops.

Each custom op is replaced by its standard-op decomposition (for the selective scan:
the chunked form) before the ONNX exporter sees the graph, so the file runs in ONNX
Runtime and parses in TensorRT without plugins.
"""
from __future__ import annotations

from pathlib import Path

import torch

# Ops that TensorRT's ONNX parser rejects or that defeat the point of the decomposition.
FORBIDDEN_OPS = frozenset({"Loop", "Scan", "Einsum", "SequenceConstruct", "SequenceAt"})


def decomposition_table() -> dict:
    """effseg's ops as standard tensor ops, and nothing else.

    Everything else is left to the ONNX exporter, which translates aten ops such as
    reflection_pad2d or upsample_bilinear2d into one ONNX node each; torch.export's core
    ATen decompositions would first break them into index gathers (slower in ORT, and
    more for TensorRT's parser to reject).
    """
    from ..ops._lowering import lowerings

    return dict(lowerings())


def onnx_op_types(model_proto) -> set:
    """Every op_type in an onnx.ModelProto, including those inside local functions."""
    types = {n.op_type for n in model_proto.graph.node}
    for fn in model_proto.functions:
        types |= {n.op_type for n in fn.node}
    return types


def export_onnx(
    model: torch.nn.Module,
    args: tuple,
    path: str | Path,
    *,
    opset: int = 18,
    dynamic_shapes=None,
    input_names: list | None = None,
    output_names: list | None = None,
    shape_samples: list | None = None,
    guard_report: list | None = None,
):
    """Export `model(*args)` to an ONNX file at `path` and return the onnx.ModelProto.

    Raises RuntimeError if the graph still contains an op TensorRT cannot take
    (Loop, Scan, Einsum, sequences). With `shape_samples` (input shapes a dynamic export
    must serve), the shape guards recorded while lowering that are false at one of them
    are appended to `guard_report` as (guard, shape) (see effseg.export.guards).
    """
    try:
        import onnx
    except ImportError as exc:
        raise RuntimeError("ONNX export needs the export extra: pip install 'effseg[export]'") from exc
    if not isinstance(args, tuple):
        raise TypeError(f"args must be a tuple of example inputs, got {type(args).__name__}")
    model = model.eval()
    with torch.no_grad():
        ep = torch.export.export(model, args, dynamic_shapes=dynamic_shapes)
        ep = ep.run_decompositions(decomposition_table())
        if shape_samples and guard_report is not None:
            from .guards import violated_guards

            guard_report.extend(violated_guards(ep, shape_samples))
        program = torch.onnx.export(ep, args, dynamo=True, opset_version=opset,
                                    input_names=input_names, output_names=output_names,
                                    verbose=False)
    program.save(str(path))
    proto = onnx.load(str(path))
    bad = onnx_op_types(proto) & FORBIDDEN_OPS
    if bad:
        raise RuntimeError(f"exported graph contains ops TensorRT rejects: {sorted(bad)}")
    return proto

