"""The backends `effseg bench` times: how each one turns (model, input) into a callable.

Peers: eager PyTorch, torch.compile, ONNX Runtime and OpenVINO (CPU, where it imports) on
torch.onnx's own export.
effseg: effseg.compile with each of its backends. A contender that cannot run raises;
the benchmark turns that into a row with the reason.
"""
from __future__ import annotations

import contextlib
import io
import logging
import re
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

PEERS = ("eager", "torch.compile", "onnxruntime", "openvino")
EFFSEG = ("effseg.eager", "effseg.inductor", "effseg.onnxruntime", "effseg.openvino", "effseg.tensorrt")
ALL = PEERS + EFFSEG
# The no-argument CPU run must finish in ~3 minutes on 2 cores. A cold inductor compile
# of one zoo net takes 30-60 s there (torch.compile and effseg.inductor alike), more than
# everything else of that model together, so the CPU default leaves both to --full /
# --backends. On CUDA every backend runs, TensorRT when it imports.
DEFAULT_CPU = ("eager", "onnxruntime", "effseg.eager", "effseg.onnxruntime")
DEFAULT_CUDA = ("eager", "torch.compile", "onnxruntime", "effseg.eager", "effseg.inductor",
                "effseg.onnxruntime", "effseg.tensorrt")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "int8": None}


class Unsupported(RuntimeError):
    """The contender has no path for this configuration (e.g. int8 in eager PyTorch)."""


@dataclass
class Context:
    model: torch.nn.Module      # eval mode, on device, at the row's dtype (fp32 for int8)
    x: torch.Tensor             # the input at the row's dtype (fp32 for int8)
    model_fp32: torch.nn.Module
    x_fp32: torch.Tensor
    device: str
    dtype: str                  # "fp32" | "fp16" | "int8"
    threads: int


@dataclass
class Runner:
    call: Callable[[], object]                       # the timed call
    output: Callable[[], object] | None = None    # one call's output for parity (default: call)
    info: dict = field(default_factory=dict)
    torch_memory: bool = True   # False: device memory is allocated outside torch's allocator


def is_peer(name: str) -> bool:
    return name in PEERS


def default_backends(device: str) -> tuple[str, ...]:
    if not device.startswith("cuda"):
        return DEFAULT_CPU
    return tuple(b for b in DEFAULT_CUDA if b != "effseg.tensorrt" or _imports("tensorrt"))


def full_backends(device: str) -> tuple[str, ...]:
    def usable(b):
        if b == "effseg.tensorrt":
            return device.startswith("cuda") and _imports("tensorrt")
        if b in ("openvino", "effseg.openvino"):
            return not device.startswith("cuda") and _imports("openvino")
        return True
    return tuple(b for b in ALL if usable(b))


def _imports(name: str) -> bool:
    try:
        __import__(name)
    except Exception:  # noqa: BLE001  ImportError, or OSError from missing shared libraries
        return False
    return True


@contextlib.contextmanager
def quiet():
    """Silence exporters' progress prints, warnings and torch's INFO/WARNING log lines,
    which would otherwise interleave with the progress bar and the table."""
    loggers = [logging.getLogger(n) for n in ("torch", "torch.onnx", "torch._dynamo",
                                              "torch._inductor", "torch.export", "onnxscript")]
    loggers.append(logging.getLogger())  # onnxruntime.quantization logs through the root
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def _no_int8(name: str, ctx: Context):
    if ctx.dtype == "int8":
        raise Unsupported(f"int8: {name} has no int8 path here (int8 rows run only on "
                          "onnxruntime, through ONNX Runtime's dynamic quantization)")


def _eager(ctx: Context) -> Runner:
    _no_int8("eager PyTorch", ctx)
    return Runner(lambda: ctx.model(ctx.x))


def _torch_compile(ctx: Context) -> Runner:
    _no_int8("torch.compile", ctx)
    # A fresh dynamo cache per contender: several models (or sizes) of one class would
    # otherwise hit the recompile limit and fall back to eager without saying so.
    torch._dynamo.reset()
    compiled = torch.compile(ctx.model)
    with quiet():
        compiled(ctx.x)  # the compilation, counted in setup_s rather than in the warm-up
    return Runner(lambda: compiled(ctx.x), info={"mode": "default"})


def export_onnx_peer(model, x, path: Path) -> str:
    """torch.onnx.export as a user would call it: the dynamo exporter, then the legacy
    TorchScript exporter when that fails. Returns which one wrote `path`."""
    errors = []
    with quiet():
        for how, kw in (("dynamo", {"dynamo": True, "opset_version": 18}),
                        ("legacy", {"dynamo": False, "opset_version": 17})):
            try:
                torch.onnx.export(model, (x,), str(path), **kw)
                _check_inputs(path)
                return how
            except Exception as exc:  # noqa: BLE001  both failures are reported together
                errors.append((how, exc))
                if _EFFSEG_OP.search(str(exc)):
                    # The legacy tracer cannot follow effseg's custom ops either (it folds
                    # them into constants under no_grad): do not spend its time.
                    break
    text = "; ".join(f"{how}: {type(e).__name__}: {_first_line(e)}" for how, e in errors)
    hint = ""
    if "effseg" in text:
        hint = ("the model calls effseg custom ops, which plain torch.onnx export cannot "
                "translate (effseg.onnxruntime exports them through effseg's decompositions); ")
    raise RuntimeError(f"torch.onnx.export failed: {hint}{text}")


_EFFSEG_OP = re.compile(r"No ONNX function found for <OpOverload\(op='effseg\.")


def plain_copy(model: torch.nn.Module) -> tuple[torch.nn.Module, int]:
    """A copy of model whose effseg modules run their plain-PyTorch reference (backend
    "ref"): the same architecture and weights as a user without effseg has them, which
    torch.onnx can export. Returns (copy, number of modules switched)."""
    import copy

    plain = copy.deepcopy(model)
    n = 0
    for m in plain.modules():
        if type(m).__module__.startswith("effseg.") and isinstance(getattr(m, "backend", None), str):
            m.backend = "ref"
            n += 1
    return plain, n


SCAN_PEER = ("torch.onnx.export has no translation for effseg's selective scan, and its plain-PyTorch "
             "form is a Python loop over up to H*W steps that the exporter unrolls step by step (it ran "
             "past the bench's 60 s setup limit on CM-UNet): not attempted")


def _export_peer_or_plain(model, x, path: Path) -> str:
    """export_onnx_peer, and when effseg's custom ops stop it, the same again on
    plain_copy(model). A model with a selective scan is not attempted (SCAN_PEER)."""
    if has_scan(model):
        raise Unsupported(SCAN_PEER)
    try:
        return export_onnx_peer(model, x, path)
    except RuntimeError as exc:
        plain, n = plain_copy(model)
        if "effseg custom ops" not in str(exc) or n == 0:
            raise
        return export_onnx_peer(plain, x, path) + f" of the plain-PyTorch form ({n} effseg modules on backend='ref')"


def _check_inputs(path: Path) -> None:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    inits = {i.name for i in graph.initializer}
    n = sum(1 for i in graph.input if i.name not in inits)
    if n != 1:
        # Seen with the legacy exporter on effseg custom ops under no_grad: the trace
        # folds the whole net into constants and the "model" ignores its input.
        raise RuntimeError(f"the exported graph has {n} inputs instead of 1 (the trace did "
                           "not follow the input through the model)")


def _first_line(exc: Exception) -> str:
    msg = str(exc)
    m = re.search(r"No ONNX function found for <OpOverload\(op='([^']+)'", msg)
    if m:
        return f"no ONNX function for {m.group(1)}"
    return (msg.strip().splitlines() or [""])[0][:160]


def ort_session(path: Path, device: str, threads: int):
    from ..runtime.sessions import ort_session as session

    try:
        return session(path, device="cuda" if device.startswith("cuda") else "cpu", threads=threads)
    except RuntimeError as exc:
        if "CUDAExecutionProvider" in str(exc):
            raise Unsupported(str(exc)) from None
        raise


def _ort_peer(ctx: Context) -> Runner:
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise Unsupported(f"onnxruntime does not import ({exc}); pip install 'effseg[export]'") from None
    # ORT reads the file into the session: the folder goes as soon as the session exists.
    with tempfile.TemporaryDirectory(prefix="effseg-bench-") as tmp:
        path = Path(tmp) / "peer.onnx"
        how = _export_peer_or_plain(ctx.model, ctx.x, path)
        info = {"exporter": how, "checked_on_second_input": _follows_input(ctx, path)}
        if ctx.dtype == "int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            qpath = Path(tmp) / "peer-int8.onnx"
            with quiet():
                quantize_dynamic(str(path), str(qpath), weight_type=QuantType.QInt8)
            path = qpath
            info["quantization"] = "onnxruntime.quantization.quantize_dynamic, int8 weights"
        sess = ort_session(path, ctx.device, ctx.threads)
    name = sess.get_inputs()[0].name
    if ctx.device.startswith("cuda"):
        # Bind the torch tensor's memory: no host round trip inside the timed call.
        binding = sess.io_binding()
        x = ctx.x.contiguous()
        binding.bind_input(name, "cuda", x.device.index or 0, _np_dtype(x.dtype), tuple(x.shape),
                           x.data_ptr())
        binding.bind_output(sess.get_outputs()[0].name, "cuda")

        def call():
            sess.run_with_iobinding(binding)

        def output():
            call()
            return binding.copy_outputs_to_cpu()[0]
        return Runner(call, output, info=info, torch_memory=False)
    xn = ctx.x.cpu().numpy()
    info["providers"] = sess.get_providers()
    return Runner(lambda: sess.run(None, {name: xn})[0], info=info)


def has_scan(model: torch.nn.Module) -> bool:
    """Whether the model holds a selective scan (Mamba / SS2D), whose plain-PyTorch form is
    a Python loop over up to H*W steps that torch.onnx unrolls step by step."""
    from ..compile.auto import has_scan as holds_scan

    return holds_scan(model)


def openvino_model(path: Path, threads: int):
    """OpenVINO's CPU plugin on an ONNX file, set as effseg's openvino backend sets it
    (effseg.runtime.sessions.openvino_model: latency hint, f32, `threads` threads).
    Returns (compiled model, infer request)."""
    try:
        import openvino  # noqa: F401
    except ImportError as exc:
        raise Unsupported(f"openvino does not import ({exc}); pip install openvino") from None
    from ..runtime.sessions import openvino_model as compile_openvino

    compiled = compile_openvino(Path(path), threads=threads)
    return compiled, compiled.create_infer_request()


def _openvino_peer(ctx: Context) -> Runner:
    if ctx.device.startswith("cuda"):
        raise Unsupported("the OpenVINO peer runs on CPU here (its GPU plugin is Intel's GPUs)")
    if ctx.dtype != "fp32":
        raise Unsupported(f"{ctx.dtype}: the OpenVINO peer runs the fp32 export")
    with tempfile.TemporaryDirectory(prefix="effseg-bench-") as tmp:
        path = Path(tmp) / "peer.onnx"
        how = _export_peer_or_plain(ctx.model, ctx.x, path)
        compiled, request = openvino_model(path, ctx.threads)  # reads the file in: the folder may go
    out = compiled.outputs[0]
    xn = ctx.x.cpu().numpy()
    return Runner(lambda: request.infer({0: xn})[out], info={"exporter": how, "precision": "f32"},
                  torch_memory=False)


def _follows_input(ctx: Context, path: Path) -> bool:
    """Raise unless the exported graph matches eager on an input it was not traced with.

    The legacy tracer, under no_grad, records what it cannot follow (effseg's custom ops,
    for one) as constants computed from the example: the graph then agrees with eager on
    that example only, which a parity check on the example cannot see."""
    import numpy as np

    from .._parity import parity_figures

    g = torch.Generator().manual_seed(1)
    x2 = torch.randn(ctx.x.shape, generator=g).to(ctx.x.device, ctx.x.dtype)
    sess = ort_session(path, "cpu", ctx.threads)
    got = sess.run(None, {sess.get_inputs()[0].name: x2.cpu().numpy()})[0]
    want = ctx.model(x2)
    want = want if isinstance(want, torch.Tensor) else next(
        t for t in torch.utils._pytree.tree_leaves(want) if isinstance(t, torch.Tensor))
    tol = 1e-3 if ctx.x.dtype == torch.float32 else 5e-2
    fig = parity_figures(want.float(), np.asarray(got, dtype=np.float32))
    if not fig["rel_err"] <= tol:
        raise RuntimeError(f"torch.onnx.export wrote a graph that disagrees with eager on a "
                           f"second input (relative error {fig['rel_err']:.2g} > {tol:g}): parts "
                           "of the model were traced as constants")
    return True


def _np_dtype(dtype: torch.dtype):
    import numpy as np

    return {torch.float32: np.float32, torch.float16: np.float16}[dtype]


def _effseg(backend: str):
    def build(ctx: Context) -> Runner:
        import effseg

        if ctx.dtype == "int8":
            raise Unsupported("int8: effseg.compile takes float32, float16 or bfloat16 "
                              "(no int8 calibration yet)")
        if backend == "openvino" and (ctx.device.startswith("cuda") or ctx.dtype != "fp32"):
            raise Unsupported("effseg.openvino runs fp32 on the CPU (OpenVINO's CPU plugin)")
        options = {"onnxruntime": {"intra_op_num_threads": ctx.threads},
                   "openvino": {"inference_num_threads": ctx.threads}}.get(backend, {})
        if backend == "inductor":
            torch._dynamo.reset()
        # check=False: the benchmark measures parity against eager itself and reports it
        # in the row, so a mismatch shows as figures instead of ending the row.
        with quiet():
            cm = effseg.compile(ctx.model_fp32, example_input=ctx.x_fp32, backend=backend,
                                device=ctx.device, dtype=ctx.x.dtype, check=False, **options)
        report = cm.report()
        # autotune: which variant this machine measured fastest (or read from its record).
        info = {"passes": report.get("passes"), "fallback": report.get("fallback"),
                "autotune": report.get("autotune")}
        return Runner(lambda: cm(ctx.x), info=info,
                      torch_memory=backend in ("eager", "inductor"))
    return build


BUILDERS: dict[str, Callable[[Context], Runner]] = {
    "eager": _eager,
    "torch.compile": _torch_compile,
    "onnxruntime": _ort_peer,
    "openvino": _openvino_peer,
    **{f"effseg.{b}": _effseg(b) for b in ("eager", "inductor", "onnxruntime", "openvino", "tensorrt")},
}


def parse_backends(names, device: str) -> tuple[str, ...]:
    """Expand --backends: names from ALL, or 'all', 'peers', 'effseg', 'default'."""
    groups = {"all": ALL, "peers": PEERS, "effseg": EFFSEG, "default": default_backends(device)}
    out: list[str] = []
    for n in names:
        if n in groups:
            out += [b for b in groups[n] if b not in out]
        elif n in BUILDERS:
            if n not in out:
                out.append(n)
        else:
            raise ValueError(f"--backends: unknown backend {n!r}; choose from "
                             f"{list(BUILDERS)} or {list(groups)}")
    return tuple(out)


class SetupTimeout(BaseException):
    """Raised inside a contender's setup when it runs past its time limit. A BaseException,
    so that exporters' `except Exception` blocks do not swallow it."""


@contextlib.contextmanager
def deadline(seconds: float | None):
    """Interrupt the body after `seconds` (SIGALRM; main thread on Unix only, else no
    limit), and again every second after that, so that a caller which catches the first
    interruption and carries on (an exporter falling back to another path) is stopped too."""
    import signal
    import threading

    usable = (seconds and seconds > 0 and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def on_alarm(signum, frame):
        raise SetupTimeout(f"setup took over {seconds:g} s")

    # The alarm's handler runs on the thread's signal stack: make it one that is alive
    # (an OpenVINO row before may have left a released one in place).
    from ..runtime.signal_stack import keep_signal_stack

    keep_signal_stack()

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
