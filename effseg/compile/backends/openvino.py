"""OpenVINO: the rewritten graph through effseg.export.export_onnx, run by OpenVINO's CPU
plugin (f32, the latency hint, torch's thread count).

The same export the onnxruntime backend runs, so one graph and one set of passes meet two
runtimes, and effseg.compile(backend="openvino") is compared with plain OpenVINO on the
plain export (bench/bench_compile.py). An infer request is not thread-safe: each calling
thread keeps its own. Outputs are written into torch tensors OpenVINO is handed (shared
memory), so no copy follows the call; reuse_outputs=True keeps one per thread, as the
onnxruntime backend does.
"""
from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import torch
from torch.utils._pytree import tree_unflatten

from ...runtime.sessions import OPENVINO_PRECISIONS, OpenVinoSession, openvino_model
from ...runtime.signal_stack import keep_signal_stack
from . import scan_segments
from ._options import check_options
from .onnxruntime import export_graph

_KEYS = {"reuse_outputs", "opset", "inference_num_threads", "precision"}


def usable(device) -> tuple[bool, str]:
    if device.type != "cpu":
        return False, "effseg's OpenVINO backend runs on the CPU plugin only"
    try:
        import onnx  # noqa: F401
        import openvino  # noqa: F401
    except ImportError as exc:
        return False, f"needs onnx and openvino (pip install openvino): {exc}"
    return True, ""


class OpenVinoRunner:
    def __init__(self, compiled, out_spec, out_like, reuse_outputs: bool):
        import openvino as ov

        self._ov = ov
        self.compiled = compiled
        self.out_spec = out_spec
        self.out_like = [(tuple(t.shape), t.dtype) for t in out_like]
        self.reuse_outputs = reuse_outputs
        self._local = threading.local()

    def _thread_state(self):
        """This thread's infer request, its reused outputs (reuse_outputs) and whether it
        has run once."""
        local = self._local
        if not hasattr(local, "request"):
            local.request, local.outs, local.ran = self.compiled.create_infer_request(), None, False
        return local

    def _bind_outputs(self, request):
        outs = [torch.empty(shape, dtype=dtype) for shape, dtype in self.out_like]
        for i, buf in enumerate(outs):
            request.set_output_tensor(i, self._ov.Tensor(buf.numpy(), shared_memory=True))
        return outs

    def __call__(self, x: torch.Tensor):
        local = self._thread_state()
        if not self.reuse_outputs:
            outs = self._bind_outputs(local.request)
        else:
            if local.outs is None:
                local.outs = self._bind_outputs(local.request)
            outs = local.outs
        local.request.set_input_tensor(0, self._ov.Tensor(x.detach().contiguous().numpy(), shared_memory=True))
        local.request.infer()
        if not local.ran:
            # A thread's first inference can initialise AMX on it, signal stack included
            # (see effseg.runtime.signal_stack).
            keep_signal_stack()
            local.ran = True
        return tree_unflatten(list(outs), self.out_spec)


def build(gm, example, *, device, options):
    check_options("openvino", options, _KEYS)
    precision = options.get("precision", "f32")
    if precision not in OPENVINO_PRECISIONS:  # before the export, which takes seconds
        raise ValueError(f"backend 'openvino' option precision must be one of {list(OPENVINO_PRECISIONS)}, "
                         f"got {precision!r}")
    threads = options.get("inference_num_threads", torch.get_num_threads())
    if not scan_segments.why_not(gm, device):
        return scan_segments.build_segmented(
            gm, example, opset=options.get("opset", 18), engine="openvino",
            open_session=lambda proto: OpenVinoSession(proto, threads=threads, precision=precision))
    with tempfile.TemporaryDirectory() as tmp:
        proto, leaves, spec = export_graph(gm, example, Path(tmp) / "model.onnx", options.get("opset", 18),
                                           "openvino")
    compiled = openvino_model(proto, threads=threads, precision=precision)
    return OpenVinoRunner(compiled, spec, leaves, bool(options.get("reuse_outputs", False)))
