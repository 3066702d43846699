"""ONNX Runtime: the rewritten graph through effseg.export.export_onnx, run with bound I/O.

Inputs are bound to the caller's tensor memory and outputs to torch tensors, so ORT
itself allocates no output and effseg copies none. Safe to call from many threads: ORT's
session.run is, an IOBinding is not, so each call binds its own (reuse_outputs=False, the
default: a fresh output tensor per call), or each thread keeps its own binding and output
buffers (reuse_outputs=True: no allocation per call, which avoids the page faults of fresh
large allocations on these machines, see ARCHITECTURE.md; the returned tensor is overwritten by
the same thread's next call, so it is meant for a single-threaded loop that consumes each
output before the next call).
"""
from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import numpy as np
import torch
from torch.utils._pytree import tree_flatten, tree_unflatten

from ...runtime.sessions import ort_session
from . import scan_segments
from ._options import check_options

_KEYS = {"reuse_outputs", "opset", "intra_op_num_threads", "graph_optimization_level"}
_NP = {torch.float32: np.float32, torch.float16: np.float16, torch.float64: np.float64,
       torch.int64: np.int64, torch.int32: np.int32, torch.bool: np.bool_}


def usable(device) -> tuple[bool, str]:
    try:
        import onnx  # noqa: F401
        import onnxruntime as ort
    except ImportError as exc:
        return False, f"needs the export extra (onnx, onnxruntime): {exc}"
    if device.type == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
        return False, "onnxruntime has no CUDAExecutionProvider here"
    return True, ""


def _binding_device(device):
    return ("cuda", device.index or 0) if device.type == "cuda" else ("cpu", 0)


class OrtRunner:
    def __init__(self, session, out_spec, out_like, device, reuse_outputs: bool):
        self.session = session
        self.out_spec = out_spec
        self.out_like = [(tuple(t.shape), t.dtype) for t in out_like]
        self.device = device
        self.reuse_outputs = reuse_outputs
        self.in_name = session.get_inputs()[0].name
        self.out_names = [o.name for o in session.get_outputs()]
        self._local = threading.local()

    def _bound_outputs(self):
        binding = self.session.io_binding()
        outs = [torch.empty(shape, dtype=dtype, device=self.device) for shape, dtype in self.out_like]
        dev, idx = _binding_device(self.device)
        for name, buf in zip(self.out_names, outs):
            binding.bind_output(name, dev, idx, _NP[buf.dtype], tuple(buf.shape), buf.data_ptr())
        return binding, outs

    def __call__(self, x: torch.Tensor):
        x = x.contiguous()
        if self.reuse_outputs:
            state = getattr(self._local, "state", None)
            if state is None:
                state = self._local.state = self._bound_outputs()
            binding, outs = state
        else:
            # A binding per call: about 5 us more per call than one shared binding (rough:
            # 11 -> 16 us on a 1x3x8x8 conv net, 1 thread, 2-core CPU); a lock instead
            # would serialise the threads ORT can run side by side.
            binding, outs = self._bound_outputs()
        dev, idx = _binding_device(self.device)
        binding.bind_input(self.in_name, dev, idx, _NP[x.dtype], tuple(x.shape), x.data_ptr())
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.session.run_with_iobinding(binding)
        return tree_unflatten(list(outs), self.out_spec)


class _AsModule(torch.nn.Module):
    """export_onnx calls .eval(), which an exported GraphModule refuses; it is already
    an inference graph, so mode changes are no-ops here."""

    def __init__(self, gm):
        super().__init__()
        self.gm = gm

    def train(self, mode: bool = True):
        return self

    def forward(self, x):
        return self.gm(x)


def export_graph(gm, example, path, opset: int, backend: str, custom_translations: dict | None = None):
    """effseg's ONNX export of a captured graph: (proto, output leaves, output spec).
    effseg's winograd_conv2d nodes (placed by the winograd_conv2d pass for this backend)
    become the Winograd graph of standard ops, not the bundles' plain Conv."""
    from ...export import export_onnx
    from ...export import winograd_conv2d as winograd_graph

    custom_translations = {**winograd_graph.translation_table(), **(custom_translations or {})}

    with torch.no_grad():
        want = gm(example)
    leaves, spec = tree_flatten(want)
    if not all(isinstance(t, torch.Tensor) for t in leaves):
        raise TypeError(f"backend {backend!r} needs a model that returns tensors only")
    proto = export_onnx(_AsModule(gm), (example,), path, opset=opset,
                        input_names=["x"], output_names=[f"out{i}" for i in range(len(leaves))],
                        custom_translations=custom_translations)
    return proto, leaves, spec


def build(gm, example, *, device, options):
    check_options("onnxruntime", options, _KEYS)
    threads = options.get("intra_op_num_threads", torch.get_num_threads())
    optimization = options.get("graph_optimization_level", "all")
    if not scan_segments.why_not(gm, device):
        return scan_segments.build_segmented(
            gm, example, opset=options.get("opset", 18), engine="onnxruntime",
            open_session=lambda proto: ort_session(proto, device="cpu", threads=threads,
                                                   optimization=optimization, quiet=False))
    with tempfile.TemporaryDirectory() as tmp:
        proto, leaves, spec = export_graph(gm, example, Path(tmp) / "model.onnx", options.get("opset", 18),
                                           "onnxruntime")
    session = ort_session(proto, device="cuda" if device.type == "cuda" else "cpu",
                          threads=threads, optimization=optimization, quiet=False)
    return OrtRunner(session, spec, leaves, device, bool(options.get("reuse_outputs", False)))
