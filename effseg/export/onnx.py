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
    from ..passes.einsum import einsum_as_matmul
    from . import resize

    table = dict(lowerings())
    # Einsum is rejected by TensorRT before 10.12 in several forms and is never quantised.
    table[torch.ops.aten.einsum.default] = einsum_as_matmul
    table.update(resize.lowerings())
    return table


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
    custom_translations: dict | None = None,
):
    """Export `model(*args)` to an ONNX file at `path` and return the onnx.ModelProto.

    Raises effseg.export.diagnose.ExportError (a RuntimeError naming the module, the op,
    what effseg tried and what to change) when tracing or translation fails, when a
    resampling op cannot be exported at the requested dynamic size, or when the graph
    still contains an op TensorRT cannot take (Loop, Scan, Einsum, sequences). With `shape_samples` (input shapes a dynamic export
    must serve), the shape guards recorded while lowering that are false at one of them
    are appended to `guard_report` as (guard, shape) (see effseg.export.guards).
    custom_translations ({op overload: onnxscript function}) keeps those ops out of the
    decomposition and translates them so (effseg.export.scan_split's effseg nodes).
    """
    try:
        import onnx
    except ImportError as exc:
        raise RuntimeError("ONNX export needs the export extra: pip install 'effseg[export]'") from exc
    if not isinstance(args, tuple):
        raise TypeError(f"args must be a tuple of example inputs, got {type(args).__name__}")
    from . import diagnose, resize

    model = model.eval()
    with torch.no_grad():
        def trace():
            return torch.export.export(model, args, dynamic_shapes=dynamic_shapes)
        try:
            ep = trace()
        except Exception as exc:  # noqa: BLE001  every exporter failure becomes one ExportError
            raise diagnose.trace_error(model, trace, exc) from exc
        ep = rewrite_user_graph(ep, args, dynamic_shapes)
        stops = resize.refusals(ep)
        if stops:
            node, reason, advice = stops[0]
            raise diagnose.ExportError(diagnose.node_module(node), diagnose.op_name(node), reason,
                                       tried="a constant resampling matrix (two MatMuls)", advice=advice)
        table = decomposition_table()
        for op in custom_translations or {}:
            table.pop(op, None)
        ep = ep.run_decompositions(table)
        if shape_samples and guard_report is not None:
            from .guards import violated_guards

            guard_report.extend(violated_guards(ep, shape_samples))
        try:
            program = torch.onnx.export(ep, args, dynamo=True, opset_version=opset,
                                        input_names=input_names, output_names=output_names,
                                        custom_translation_table=custom_translations, verbose=False)
        except Exception as exc:  # noqa: BLE001  the translator raises many types
            raise diagnose.translation_error(ep, exc) from exc
    program.save(str(path))
    proto = onnx.load(str(path))
    bad = onnx_op_types(proto) & FORBIDDEN_OPS
    if bad:
        raise diagnose.forbidden_error(proto, bad)
    return proto


def rewrite_user_graph(ep, args: tuple, dynamic_shapes=None, records: list | None = None):
    """Graph passes on the export path, for code written the way users write it:
    effseg's linear_attention pass (a GeoSeg-style einsum attention becomes effseg's op,
    then its MatMul lowering, not a chain of generic einsum lowerings) and the constant
    resampling matrices of effseg.export.resize (bicubic, antialias, non-dividing adaptive
    average pools). A changed graph is exported again (an exported program's signature
    would otherwise need rebuilding by hand); an untouched one is returned as it was."""
    from . import resize

    names = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    wanted = {str(t) for t in (torch.ops.aten.einsum.default, *resize.MATRIX_TARGETS)}
    if not names & wanted:
        return ep
    from ..passes import linear_attention

    gm = ep.module()
    recs = [linear_attention.run(gm, torch.device("cpu")), resize.run(gm)]
    if records is not None:
        records.extend(recs)
    if not any(r["changed"] for r in recs):
        return ep
    gm.graph.lint()
    gm.recompile()
    return torch.export.export(_Graph(gm), args, dynamic_shapes=dynamic_shapes)


class _Graph(torch.nn.Module):
    """An unlifted exported graph as a module export can trace again."""

    def __init__(self, gm):
        super().__init__()
        self.gm = gm

    def forward(self, x):
        return self.gm(x)

