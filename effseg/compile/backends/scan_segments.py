"""Captured graphs holding effseg's selective scans, on ONNX Runtime or OpenVINO.

The scan's standard-op ONNX form runs 8-18x slower than eager PyTorch with effseg's C++
scan on a CPU (CM-UNet 512²: ONNX Runtime 3650 ms, OpenVINO 1628 ms, eager 201 ms;
bench/results/compile-cpu.json). So, as the runtime's native-scan bundles do
(effseg.export.scan_split), the graph is exported with each scan as one effseg node and
cut there: the engine runs the plain-ONNX segments between the scans, effseg's C++ kernel
runs the scans (effseg.runtime.native_scan), on the same numpy arrays. Mamba's 1-D scan
(PyramidMamba) is cut the same way: its ONNX form ran 3x slower than eager (549 vs 175 ms).
"""
from __future__ import annotations

import torch
from torch.utils._pytree import tree_unflatten

from ...runtime.sessions import Named


def _calls(gm, name: str) -> list:
    op = getattr(torch.ops.effseg, name, None)
    if op is None:
        return []
    targets = {op, getattr(op, "default", None)}
    return [n for n in gm.graph.nodes if n.op == "call_function" and n.target in targets]


def _val(arg):
    return arg.meta.get("val") if isinstance(arg, torch.fx.Node) else None


def _selective_cuttable(node) -> bool:
    """A selective scan the runtime's numpy path takes: fp32, B and C (batch, N, L), no
    initial state (Mamba's blocks)."""
    args = list(node.args) + [None] * (11 - len(node.args))
    u, b, c, h0 = _val(args[0]), _val(args[3]), _val(args[4]), args[8]
    return (h0 is None and all(t is not None for t in (u, b, c)) and u.dtype == torch.float32
            and b.dim() == 3 and c.dim() == 3)


def holds_scan(gm) -> bool:
    """Whether gm holds a scan to cut at: a cross scan, or Mamba's selective scan (every
    one of them in a form the numpy path takes)."""
    selective = _calls(gm, "selective_scan")
    if selective and not all(_selective_cuttable(n) for n in selective):
        return False
    return bool(selective or _calls(gm, "cross_selective_scan"))


def why_not(gm, device) -> str:
    """Why the graph runs as one ONNX graph ('' when it is cut at its scans)."""
    from ...runtime import native_scan

    if not holds_scan(gm):
        return "no selective scan in the graph that the native path takes"
    if device.type != "cpu":
        return "the native scan runs on the CPU only"
    if not native_scan.available():
        return native_scan.reason()
    return ""


class _Constants:
    """The cut's constants graph (Identity nodes on initializers, split_at_scans) read
    directly, so no engine is asked to run a graph without inputs."""

    def __init__(self, proto):
        from onnx import numpy_helper

        inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
        self._values = {n.output[0]: inits[n.input[0]] for n in proto.graph.node}
        self._outs = [Named(o.name) for o in proto.graph.output]

    def get_inputs(self) -> list:
        return []

    def get_outputs(self) -> list:
        return self._outs

    def run(self, names, feed) -> list:
        return [self._values[n] for n in names]


class SegmentRunner:
    """The cut graph behind the backends' call interface: a CPU tensor in, the model's
    output structure of fresh tensors out."""

    def __init__(self, model, out_names, out_spec, out_like, engine: str):
        self.model = model
        self.out_names = out_names
        self.out_spec = out_spec
        self.out_dtypes = [t.dtype for t in out_like]
        c = model.counts
        self.form = f"{engine} on {c['segments']} ONNX segments + effseg's C++ scan at {c['scans']} scans"

    def __call__(self, x: torch.Tensor):
        arrs = self.model.outputs(x.detach().contiguous().numpy(), self.out_names)
        # Copies: an engine may hand out its own buffers, which its next call overwrites.
        outs = [torch.from_numpy(a).to(dtype=d, copy=True) for a, d in zip(arrs, self.out_dtypes)]
        return tree_unflatten(outs, self.out_spec)


def build_segmented(gm, example, *, opset: int, engine: str, open_session) -> SegmentRunner:
    """Export gm with its scans as effseg nodes, cut it, and open each segment with
    open_session(onnx ModelProto) (an object with an ORT session's get_inputs,
    get_outputs and run)."""
    import tempfile
    from pathlib import Path

    from ...export.scan_split import split_at_scans, translation_table
    from ...runtime.segmented import SegmentedModel
    from .onnxruntime import export_graph

    with tempfile.TemporaryDirectory() as tmp:
        proto, leaves, spec = export_graph(gm, example, Path(tmp) / "model.onnx", opset, engine,
                                           custom_translations=translation_table(selective=True))
    constants, segments, steps = split_at_scans(proto)
    protos = {"constants": constants, **{f"seg{i:02d}": s for i, s in enumerate(segments)}}
    section = {"constants": "constants", "segments": [f"seg{i:02d}" for i in range(len(segments))],
               "steps": steps}

    def opened(name):
        return _Constants(protos[name]) if name == "constants" else open_session(protos[name])

    model = SegmentedModel(section, None, "x", "out0", open_session=opened)
    return SegmentRunner(model, [f"out{i}" for i in range(len(leaves))], spec, leaves, engine)
