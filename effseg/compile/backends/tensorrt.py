"""TensorRT: the rewritten graph through effseg's ONNX export and effseg.export.build_engine,
run on the caller's CUDA tensors (TensorRT 10/11: set_tensor_address + execute_async_v3
on torch's current stream, so no host copies). TensorRT cannot be installed on the
machines effseg is developed on: this path has not run there.

Safe to call from many threads: an execution context holds the bound addresses and the
activation memory, so each thread gets its own (created on its first call; each costs
the engine's activation memory), and each call its own output tensors.
"""
from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import numpy as np
import torch
from torch.utils._pytree import tree_unflatten

from ._options import check_options

_KEYS = {"precision", "workspace", "timing_cache", "opset"}


def usable(device) -> tuple[bool, str]:
    try:
        import tensorrt  # noqa: F401
    except Exception as exc:  # noqa: BLE001  ImportError, or OSError when the libraries are missing
        return False, f"the 'tensorrt' Python package does not import ({type(exc).__name__}: {exc})"
    if device.type != "cuda":
        return False, "TensorRT runs on CUDA devices only"
    return True, ""


class TrtRunner:
    def __init__(self, engine_bytes: bytes, out_spec, device):
        from ...runtime.tensorrt_runner import Engine

        self._loaded = Engine(engine_bytes, "built by effseg.compile")
        self.engine = self._loaded.engine
        self._local = threading.local()
        self._local.context = self._loaded.context  # the building thread's; others make their own
        self.input = self._loaded.inputs[0]
        self.outputs = self._loaded.outputs
        self.dtypes = {n: torch.from_numpy(np.zeros(1, dt)).dtype for n, dt in self._loaded.dtypes.items()}
        self.out_spec, self.device = out_spec, device

    @property
    def context(self):
        ctx = getattr(self._local, "context", None)
        if ctx is None:
            ctx = self._local.context = self.engine.create_execution_context()
            if ctx is None:
                raise RuntimeError("TensorRT could not create an execution context for this thread "
                                   "(out of GPU memory?)")
        return ctx

    def __call__(self, x):
        x = x.to(self.dtypes[self.input]).contiguous()
        context = self.context
        context.set_input_shape(self.input, tuple(x.shape))
        context.set_tensor_address(self.input, x.data_ptr())
        outs = []
        for name in self.outputs:
            out = torch.empty(tuple(context.get_tensor_shape(name)), dtype=self.dtypes[name], device=self.device)
            context.set_tensor_address(name, out.data_ptr())
            outs.append(out)
        if not context.execute_async_v3(torch.cuda.current_stream(self.device).cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed (see TensorRT's log)")
        return tree_unflatten(outs, self.out_spec)


def build(gm, example, *, device, options):
    check_options("tensorrt", options, _KEYS)
    from ...export import build_engine
    from .onnxruntime import export_graph

    precision = options.get("precision", "fp16" if example.dtype == torch.float16 else "fp32")
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path, engine_path = Path(tmp) / "model.onnx", Path(tmp) / "model.engine"
        _, _, spec = export_graph(gm, example, onnx_path, options.get("opset", 18), "tensorrt")
        build_engine(onnx_path, engine_path, workspace=options.get("workspace", "1GiB"),
                     timing_cache=options.get("timing_cache"), precision=precision, progress=False)
        return TrtRunner(engine_path.read_bytes(), spec, device)
