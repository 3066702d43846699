"""effseg.compile(model) -> CompiledModel: capture, rewrite, hand to a backend, check."""
from __future__ import annotations

import contextlib
import copy
import threading
import time
import warnings
from collections import OrderedDict

import torch

from .._parity import check_parity
from . import auto
from . import autotune as tuning
from .backends import BACKENDS, USABLE
from .capture import capture, capture_parts, with_parts
from .threads import torch_team

BACKEND_NAMES = ("auto", *BACKENDS)
DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_CORE_OPTIONS = {"dynamic", "trial", "max_shapes"}
DEFAULT_MAX_SHAPES = 8


class _Entry:
    """One specialisation: a captured graph (or the eager fallback) and its runner."""

    def __init__(self, shape, runner, cap, build_s, parity, tuned):
        self.shape, self.runner, self.cap = shape, runner, cap
        self.build_s, self.parity, self.tuned = build_s, parity, tuned
        self.seen = {shape}
        self.serial = 0  # build order, for report()

    def matches(self, shape) -> bool:
        if len(shape) != len(self.shape) or not any(self.cap.dynamic_dims):
            return False
        return all(d or a == b for a, b, d in zip(shape, self.shape, self.cap.dynamic_dims))

    def record(self) -> dict:
        c = self.cap
        rec = {"shape": list(self.shape), "fallback": c.gm is None, "passes": c.passes,
               "capture_s": round(c.capture_s, 3), "build_s": round(self.build_s, 3),
               "dynamic_dims": list(c.dynamic_dims)}
        if c.gm is None:
            rec.update(failed_module=c.failed_module, error=c.error, parts=c.parts)
        if self.parity is not None:
            rec["parity"] = self.parity
        rec["autotune"] = self.tuned
        form = getattr(self.runner, "form", None)
        if form:  # how the backend runs this graph where it has more than one way
            rec["form"] = form
        return rec


class CompiledModel:
    """Inference-only compiled form of a model; call it like the model.

    A new input shape that no captured graph covers is captured and built again (and
    checked when check=True). Built graphs are kept in a least-recently-used cache of
    `max_shapes` entries (default 8): each holds a graph, its weights and a backend
    session, so an unbounded cache grew by tens of MB per shape; a shape evicted and seen
    again is captured again.

    Safe to call from many threads: backends run each call with its own bindings and
    output tensors, and the shape cache is guarded by a lock; a shape being built is
    built once, while calls at shapes already built go on. Weights are those of the
    model at compile time (a deep copy): later changes to the model are not seen.
    """

    def __init__(self, eager, reference, model, backend, device, dtype, check, options, auto_info,
                 tuner=None, tune_off=""):
        self.eager = eager
        self.backend = backend
        self.device = device
        self.dtype = dtype
        self.check = check
        self._reference = reference  # eval copy at the user's precision, for parity
        self._model = model  # eval copy on device/dtype, the one captured
        self._options = dict(options)
        self._dynamic = bool(self._options.pop("dynamic", False))
        self.max_shapes = _max_shapes(self._options.pop("max_shapes", DEFAULT_MAX_SHAPES))
        self._options.pop("trial", None)
        self._auto = auto_info
        self._tuner, self._tune_off = tuner, tune_off
        self._entries: OrderedDict = OrderedDict()  # least recently used first
        self._failed = None
        self._lock = threading.Lock()  # the cache, counters; held briefly
        self._build_lock = threading.Lock()  # one capture/build at a time (export is not thread-safe)
        self._weights = _weight_versions(eager)
        self.calls = 0
        self.evictions = 0
        self._built = 0

    # -- building ---------------------------------------------------------------
    def _specialise(self, x: torch.Tensor) -> _Entry:
        """Capture and build for x's shape; the caller holds _build_lock."""
        # A model export could not capture once (data-dependent control flow) is not
        # captured again per shape: one warning, then eager for every shape.
        tuned_backend = self._tuner is not None and self.backend in tuning.TUNED_BACKENDS
        cap = self._failed or capture(self._model, x, self.device, dynamic=self._dynamic,
                                           backend=self.backend, run_passes=not tuned_backend)
        t0 = time.perf_counter()
        what = f"effseg.compile backend {self.backend!r} at input shape {tuple(x.shape)}"
        want = None
        if self.check:
            with torch.no_grad():
                want = self._reference(x.to(_ref_dtype(self._reference, self.dtype)))
        if cap.gm is None:
            runner, cap = self._partial(cap, x)
            tuned = tuning.off_record("the model was captured in parts: not tuned")
        elif tuned_backend:
            def agree(out, name):
                check_parity(want, out, self.dtype, f"{what}, autotune candidate {name!r}")
            runner, cap, tuned = tuning.tune(
                self._tuner, self._model, cap, x, backend=self.backend, device=self.device,
                options=self._options, dynamic=self._dynamic, check=agree if self.check else None,
                build=lambda gm: BACKENDS[self.backend](gm, x, device=self.device, options=self._options))
        else:
            runner = BACKENDS[self.backend](cap.gm, x, device=self.device, options=self._options)
            tuned = tuning.off_record(self._tune_off or f"backend {self.backend!r} is not tuned "
                                        f"(tuned: {list(tuning.TUNED_BACKENDS)})")
        parity = None
        with torch.no_grad():
            # Run once here even unchecked: backends that build lazily (Inductor compiles
            # on its first call) then do it under the build lock, not in a caller's race.
            got = runner(x)
            if self.check:
                parity = check_parity(want, got, self.dtype, what)
        entry = _Entry(tuple(x.shape), runner, cap, time.perf_counter() - t0, parity, tuned)
        with self._lock:
            self._built += 1
            entry.serial = self._built
            self._entries[entry.shape] = entry
            self._entries.move_to_end(entry.shape)
            while len(self._entries) > self.max_shapes:
                self._entries.popitem(last=False)
                self.evictions += 1
        return entry

    def _partial(self, cap, x):
        """The whole model could not be captured: capture its submodules one by one and
        run the model's own forward with those swapped in (eager where they fail)."""
        first = self._failed is None
        self._failed = cap  # the whole is not tried again at other shapes
        try:
            parts, eager = capture_parts(self._model, x, self.device, backend=self.backend)
        except Exception as exc:  # noqa: BLE001  the eager forward with hooks failed: run eagerly
            parts, eager = [], [("<children>", type(cap)(gm=None, error=f"{type(exc).__name__}: {exc}"))]
        runners = {p.path: BACKENDS[self.backend](p.cap.gm, p.example, device=self.device, options=self._options)
                   for p in parts}
        part_cap = copy.copy(cap)
        part_cap.parts = [{"module": p.path, "captured": True, "passes": p.cap.passes} for p in parts] + [
            {"module": path, "captured": False, "failed_module": c.failed_module, "error": c.error}
            for path, c in eager]
        if first:
            kept = ", ".join(p.path for p in parts) or "none"
            warnings.warn(
                f"effseg.compile could not capture module {cap.failed_module} of "
                f"{type(self.eager).__name__} for input shape {tuple(x.shape)} ({cap.error}); "
                f"its submodules are compiled one by one instead (compiled: {kept}; eager: "
                f"{', '.join(p for p, _ in eager) or 'none'})", RuntimeWarning, stacklevel=4)
        return (with_parts(self._model, runners) if runners else self._model), part_cap

    def _find(self, shape):
        """(entry, first_use) from the cache, or (None, False); marks it most recently used."""
        with self._lock:
            entry = self._entries.get(shape)
            if entry is not None:
                self._entries.move_to_end(shape)
                return entry, False
            for key, e in self._entries.items():
                if e.matches(shape):
                    self._entries.move_to_end(key)
                    return e, shape not in e.seen
        return None, False

    def _lookup(self, x: torch.Tensor):
        shape = tuple(x.shape)
        entry, first_use = self._find(shape)
        if entry is not None:
            return entry, first_use
        with self._build_lock:
            entry, first_use = self._find(shape)  # built by another thread meanwhile
            if entry is not None:
                return entry, first_use
            return self._specialise(x), False

    # -- running ----------------------------------------------------------------
    def __call__(self, x):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
        x = x.to(self.device, self.dtype)
        entry, first_use = self._lookup(x)
        # ONNX Runtime and TensorRT run their own pools (effseg's ORT sessions do not spin).
        team = torch_team(self.device) if self.backend in ("eager", "inductor") else contextlib.nullcontext()
        with torch.no_grad(), team:
            if first_use:
                # A symbolic graph may still guard (e.g. H divisible by 32): a shape it
                # rejects gets its own capture instead of an error.
                try:
                    out = entry.runner(x)
                    with self._lock:
                        entry.seen.add(tuple(x.shape))
                except Exception:  # noqa: BLE001  (any failure of a guarded graph means: capture this shape)
                    with self._build_lock:
                        entry = self._specialise(x)
                    out = entry.runner(x)
            else:
                out = entry.runner(x)
        with self._lock:
            self.calls += 1
        return out

    forward = __call__

    def report(self) -> dict:
        """What was done: backend (and how auto chose it), passes, timings, parity, the
        shape cache (specialisations in build order, lru_order: their shapes least
        recently used first, max_shapes, evictions) and
        whether the original model's weights changed since compile (they are not seen)."""
        with self._lock:
            lru = [list(e.shape) for e in self._entries.values()]
            specs = [e.record() for e in sorted(self._entries.values(), key=lambda e: e.serial)]
            calls, evictions = self.calls, self.evictions
        return {
            "backend": self.backend, "device": str(self.device),
            "dtype": str(self.dtype).replace("torch.", ""), "check": self.check,
            "dynamic": self._dynamic, "auto": self._auto,
            "fallback": any(s["fallback"] for s in specs),
            "passes": specs[0]["passes"] if specs else [],
            "autotune": specs[0]["autotune"] if specs else None,
            "parity": specs[-1].get("parity") if specs else None,
            "specialisations": specs, "calls": calls,
            "max_shapes": self.max_shapes, "evictions": evictions, "lru_order": lru,
            "weights": {"copied_at_compile": True,
                        "model_changed_since": _weight_versions(self.eager) != self._weights},
        }

    def __repr__(self) -> str:
        return (f"CompiledModel({type(self.eager).__name__}, backend={self.backend!r}, "
                f"device={self.device}, dtype={self.dtype}, shapes={list(self._entries)})")


def _max_shapes(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"max_shapes must be a positive int (graphs kept per model), got {value!r}")
    return value


def _weight_versions(model) -> tuple:
    """Identity and in-place version of every parameter and buffer: changes when weights
    are assigned, loaded (load_state_dict copies in place) or stepped by an optimizer."""
    return tuple((id(t), _version(t)) for t in (*model.parameters(), *model.buffers()))


def _version(t) -> int:
    try:
        return t._version
    except RuntimeError:  # an inference-mode tensor has no version counter
        return -1


def _ref_dtype(module, dtype):
    p = next(iter(module.parameters()), None)
    return p.dtype if p is not None and p.is_floating_point() else dtype


def _model_device(model) -> torch.device:
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


def _example(example_input, input_shape, device) -> torch.Tensor:
    if example_input is None and input_shape is None:
        raise ValueError("example_input or input_shape is required (the graph is captured on an example)")
    if input_shape is not None:
        if (not isinstance(input_shape, (tuple, list, torch.Size)) or not input_shape
                or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in input_shape)):
            raise ValueError(f"input_shape must be a non-empty tuple of positive ints, got {input_shape!r}")
        input_shape = tuple(input_shape)
    if example_input is not None:
        if not isinstance(example_input, torch.Tensor):
            raise TypeError(f"example_input must be a torch.Tensor, got {type(example_input).__name__}")
        if not example_input.is_floating_point():
            raise TypeError(f"example_input must be floating point, got {example_input.dtype}")
        if input_shape is not None and tuple(example_input.shape) != input_shape:
            raise ValueError(f"input_shape {input_shape} does not match example_input's shape "
                             f"{tuple(example_input.shape)}")
        return example_input.detach().to(device)
    g = torch.Generator().manual_seed(0)
    return torch.randn(input_shape, generator=g).to(device)


def compile(model: torch.nn.Module, *, example_input: torch.Tensor | None = None,
            input_shape=None, device=None, dtype: torch.dtype = torch.float32,
            backend: str = "auto", check: bool = True, autotune=None,
            **backend_options) -> CompiledModel:
    """Compile `model` for inference on `device` at `dtype`.

    backend: "eager" (effseg's graph passes, run by PyTorch), "inductor" (the passes,
    then torch.compile), "onnxruntime" (effseg.export.export_onnx, an ORT session with
    bound I/O), "openvino" (the same export on OpenVINO's CPU plugin, f32; needs openvino),
    "tensorrt" (needs TensorRT), or "auto": on CUDA "inductor"; on CPU
    "onnxruntime" when onnxruntime imports (fastest on the zoo anchors in ARCHITECTURE.md),
    else "eager". trial=True makes auto time the usable backends on the example instead.
    dynamic=True asks torch.export for symbolic batch/H/W (default: one graph per shape).
    max_shapes (default 8) bounds the graphs kept: the least recently used is dropped
    (and captured again if its shape comes back).
    Other keyword options go to the backend (inductor: mode, options, fullgraph;
    onnxruntime: reuse_outputs, opset, intra_op_num_threads, graph_optimization_level;
    openvino: reuse_outputs, opset, inference_num_threads, precision "f32"/"bf16"/"f16").
    reuse_outputs=True (onnxruntime) returns the same per-thread output buffer on every
    call: the tensor is overwritten by that thread's next call; for single-threaded loops.

    autotune (backends "eager", "onnxruntime", "openvino"): for each input shape, effseg's
    rewritten graph, the plain model ("eager": the unchanged module; otherwise the
    captured graph exported with no pass) and the graph without each op-swapping pass are
    built and timed side by side (a few seconds), and the fastest is kept; the decision is
    stored on disk under $EFFSEG_CACHE/autotune (default ~/.cache/effseg/autotune), keyed
    by machine, model structure, shape, dtype and options, so the next compile measures
    nothing. report()["autotune"] gives the choice and the times. None (default): on
    unless EFFSEG_AUTOTUNE=0; True / False; or an effseg.compile.Tuner (budget, cache
    folder, timer).

    The model is deep-copied at compile time: changing its weights afterwards (training,
    load_state_dict) does not change the compiled model; compile again.
    report()["weights"]["model_changed_since"] says when that has happened.

    The result may be called from many threads at once (per-call output tensors and
    bindings; the shape cache is locked).

    check=True compares compiled and eager outputs on the example (and on each new input
    shape) and raises effseg.ParityError with the figures when they disagree. A model
    torch.export cannot capture as a whole has its submodules captured one by one (the
    model's own forward runs between them; what cannot be captured runs eagerly), with a
    RuntimeWarning naming the module that stopped capture; report() lists the parts.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(backend, str) or backend not in BACKEND_NAMES:
        raise ValueError(f"backend must be one of {list(BACKEND_NAMES)}, got {backend!r}")
    if not isinstance(dtype, torch.dtype) or dtype not in DTYPES:
        raise TypeError(f"dtype must be one of {[str(d) for d in DTYPES]}, got {dtype!r}")
    if not isinstance(check, bool):
        raise TypeError(f"check must be a bool, got {type(check).__name__}")
    _max_shapes(backend_options.get("max_shapes", DEFAULT_MAX_SHAPES))
    tuner, tune_off = tuning.resolve(autotune)
    try:
        device = torch.device(device) if device is not None else _model_device(model)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must name a torch device, got {device!r}") from exc
    x = _example(example_input, input_shape, device).to(dtype=dtype)

    reference = copy.deepcopy(model).eval().to(device)
    work = copy.deepcopy(reference).to(dtype=dtype) if dtype != _ref_dtype(reference, dtype) else copy.deepcopy(reference)
    for p in work.parameters():
        p.requires_grad_(False)

    auto_info = None
    if backend == "auto":
        backend, auto_info = auto.choose(work, x, device, trial=bool(backend_options.get("trial", False)))
    else:
        if "trial" in backend_options:
            raise TypeError("trial applies to backend='auto' only")
        ok, why = USABLE[backend](device)
        if not ok:
            raise RuntimeError(f"backend {backend!r} is unusable: {why}")
    cm = CompiledModel(model, reference, work, backend, device, dtype, check, backend_options, auto_info,
                       tuner, tune_off)
    with cm._build_lock:
        cm._specialise(x)
    return cm
