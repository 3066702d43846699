"""The one place effseg builds ONNX Runtime sessions: the runtime's Predictor, the
compile backend, export's parity checks, INT8 calibration and the benchmarks all come
here, so a session setting (threads, providers, logging, spinning) is decided once.
Torch-free, like the rest of the runtime."""
from __future__ import annotations

import os
from pathlib import Path

from .signal_stack import keep_signal_stack

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
SPINNING_ENV = "EFFSEG_ORT_SPINNING"
SPIN_KEYS = ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning")


def import_ort():
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise RuntimeError("onnxruntime is not installed: pip install onnxruntime "
                           "(or onnxruntime-gpu)") from exc
    return ort


def providers_for(device: str = "cpu", providers=None) -> list[str]:
    """Execution providers for a device name ("cpu", "cuda", "cuda:1", "auto").

    "auto" takes CUDA where this onnxruntime has it, then the CPU; TensorRT's provider is
    never chosen unasked, since it builds an engine at start-up."""
    ort = import_ort()
    if providers is not None:
        return list(providers)
    avail = ort.get_available_providers()
    if device == "auto":
        return [p for p in (CUDA, CPU) if p in avail]
    if device.startswith("cuda"):
        if CUDA not in avail:
            raise RuntimeError("onnxruntime has no CUDAExecutionProvider here (install onnxruntime-gpu)")
        return [CUDA, CPU]
    if device != "cpu":
        raise ValueError(f"device must be 'cpu', 'cuda[:N]' or 'auto', got {device!r}")
    return [CPU]


def spinning_default() -> bool:
    """Whether sessions spin-wait by default: off unless EFFSEG_ORT_SPINNING=1."""
    v = os.environ.get(SPINNING_ENV, "0").strip().lower()
    if v in ("1", "true", "on"):
        return True
    if v in ("", "0", "false", "off"):
        return False
    raise ValueError(f"{SPINNING_ENV} must be 1 or 0, got {v!r}")


def ort_session(model, *, device: str = "cpu", providers=None, threads: int | None = None,
                optimization: str | None = None, quiet: bool = True, external: dict | None = None,
                spinning: bool | None = None):
    """An InferenceSession for `model`: a path, the model's bytes, or an onnx ModelProto.

    threads: intra-op threads (None: ORT's default); optimization: None (ORT's default,
    all), one of "disable", "basic", "extended", "all", or an ort.GraphOptimizationLevel; quiet: warnings off (ORT logs
    every constant-folded initializer at the default level); external: {file name: bytes}
    of external-data weights, handed over from memory so that only bytes the caller has
    verified ever run (a path would be opened again, after any check).
    spinning: whether ORT's thread pools spin-wait between (and inside) runs; None:
    spinning_default(), i.e. off. Spinning threads hold cores that a competing process
    (or this process's own other threads) needs, which made calls several times slower
    on a busy 2-core machine; passive waiting costs a thread wake-up per parallel step."""
    ort = import_ort()
    so = ort.SessionOptions()
    if spinning is None:
        spinning = spinning_default()
    elif not isinstance(spinning, bool):
        raise ValueError(f"spinning must be True, False or None (the {SPINNING_ENV} default), got {spinning!r}")
    for key in SPIN_KEYS:
        so.add_session_config_entry(key, "1" if spinning else "0")
    if external:
        if not hasattr(so, "add_external_initializers_from_files_in_memory"):
            raise RuntimeError(f"the model keeps its weights in {', '.join(sorted(external))}; onnxruntime "
                               f"{ort.__version__} can only read them by path: upgrade onnxruntime (1.20 or newer)")
        names = sorted(external)
        buffers = [external[n] for n in names]  # alive until the session is built: ORT copies them then
        so.add_external_initializers_from_files_in_memory(names, buffers, [len(b) for b in buffers])
    if threads is not None:
        if int(threads) < 0:
            raise ValueError(f"threads must be >= 0 (0: ORT's default), got {threads}")
        so.intra_op_num_threads = int(threads)
    if isinstance(optimization, ort.GraphOptimizationLevel):
        so.graph_optimization_level = optimization
    elif optimization is not None:
        levels = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
                  "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                  "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                  "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
        if optimization not in levels:
            raise ValueError(f"optimization must be one of {sorted(levels)}, got {optimization!r}")
        so.graph_optimization_level = levels[optimization]
    if quiet:
        so.log_severity_level = 3
    if hasattr(model, "SerializeToString"):
        model = model.SerializeToString()
    elif isinstance(model, Path):
        model = str(model)
    return ort.InferenceSession(model, so, providers=providers_for(device, providers))


OPENVINO_PRECISIONS = ("f32", "bf16", "f16")


def openvino_model(model, *, threads: int | None = None, precision: str = "f32", profile: bool = False):
    """OpenVINO's CPU plugin on an ONNX model (a path, or an onnx ModelProto): the latency
    hint, `threads` inference threads (None: OpenVINO's default). precision "f32" (the
    default) keeps the plugin from down-casting to bf16 on CPUs with AMX/AVX512-BF16, so it
    computes what PyTorch and ORT compute. An openvino.Model is taken as it is. profile:
    per-node timings on (request.get_profiling_info()). Returns the compiled model."""
    try:
        import openvino as ov
    except ImportError as exc:
        raise RuntimeError(f"openvino is not installed ({exc}): pip install openvino") from None
    if precision not in OPENVINO_PRECISIONS:
        raise ValueError(f"precision must be one of {list(OPENVINO_PRECISIONS)}, got {precision!r}")
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision}
    if profile:
        config["PERF_COUNT"] = True
    if threads is not None:
        if isinstance(threads, bool) or int(threads) < 0:
            raise ValueError(f"threads must be >= 0 (0: OpenVINO's default), got {threads!r}")
        config["INFERENCE_NUM_THREADS"] = int(threads)
    core = ov.Core()
    if hasattr(model, "SerializeToString"):
        # read_model takes an ONNX model's bytes; weights inside the proto come with them.
        model = core.read_model(model.SerializeToString(), b"")
    elif isinstance(model, Path):
        model = str(model)
    compiled = core.compile_model(model, "CPU", config)
    keep_signal_stack()  # the plugin may leave this thread on a signal stack it later frees
    return compiled


class Named:
    """A value's name, as ORT's session.get_inputs() / get_outputs() items carry it."""

    def __init__(self, name: str):
        self.name = name


class OpenVinoSession:
    """An OpenVINO CPU-plugin model behind the slice of an ORT session's interface that
    effseg.runtime.segmented uses: get_inputs(), get_outputs() and run(names, feed).
    One infer request per calling thread (a request is not thread-safe). run returns the
    request's own output arrays, which its next run on the same thread overwrites: copy
    what must outlive that."""

    def __init__(self, model, *, threads: int | None = None, precision: str = "f32"):
        import threading

        self.compiled = openvino_model(model, threads=threads, precision=precision)
        self._ins = [Named(p.get_any_name()) for p in self.compiled.inputs]
        self._outs = [Named(p.get_any_name()) for p in self.compiled.outputs]
        self._in_index = {n.name: i for i, n in enumerate(self._ins)}
        self._out_index = {n.name: i for i, n in enumerate(self._outs)}
        self._local = threading.local()

    def get_inputs(self) -> list:
        return self._ins

    def get_outputs(self) -> list:
        return self._outs

    def run(self, names, feed: dict) -> list:
        request = getattr(self._local, "request", None)
        first = request is None
        if first:
            request = self._local.request = self.compiled.create_infer_request()
        # share_inputs: the feed's arrays are read in place, not copied first (2 % on
        # CM-UNet's cut form at 512^2 in a side-by-side spot check); the call is
        # synchronous, so the arrays outlive it.
        request.infer({self._in_index[k]: v for k, v in feed.items()}, share_inputs=True)
        if first:
            keep_signal_stack()  # a thread's first inference can set up AMX, signal stack included
        return [request.get_output_tensor(self._out_index[n]).data for n in names]
