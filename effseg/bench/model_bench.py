"""`effseg bench`: latency, throughput, memory and parity of whole models on every
backend, side by side in one process. One row per (model, size, batch, dtype, backend)."""
from __future__ import annotations

import copy
import datetime as _dt
import gc
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch.utils._pytree import tree_flatten

from .._parity import parity_figures
from .._timing import machine, sample_ms
from . import contenders as C
from .memory import HostPeak, gpu_peak_mb, gpu_reset
from .script import allocator, omp_wait
from .stats import summarize, throughput

SCHEMA = 1
DEFAULT_MODELS = ("unetformer", "abcnet", "cmunet")
# Per preset: models, sizes, (warm-up, timed calls) and the setup time limit per row (s)
# on CPU and on CUDA; explicit options win. The CPU limit keeps one pathological export
# (or compile) from taking the no-argument run far past its ~3 minutes.
PRESETS = {
    "default": {"models": DEFAULT_MODELS, "sizes": (512,), "cpu": (1, 5), "cuda": (10, 100),
                "setup_timeout": {"cpu": 60.0, "cuda": 300.0}},
    "quick": {"models": ("unetformer-dw",), "sizes": (128,), "cpu": (1, 3), "cuda": (3, 20),
              "setup_timeout": {"cpu": 60.0, "cuda": 120.0}},
    "full": {"models": None, "sizes": (512, 1024), "cpu": (2, 10), "cuda": (10, 200),
             "setup_timeout": {"cpu": None, "cuda": None}},
}
ROW_KEYS = ("model", "size", "batch", "dtype", "backend", "kind", "error", "setup_s",
            "median_ms", "p90_ms", "p99_ms", "fps", "mp_per_s", "host_peak_rss_mb",
            "gpu_peak_mb", "params_m", "gflops", "max_abs_err", "argmax_agreement",
            "speedup_vs_eager", "speedup_vs_best_peer")


@dataclass
class BenchConfig:
    models: list = field(default_factory=lambda: list(DEFAULT_MODELS))
    sizes: list = field(default_factory=lambda: [512])
    batches: list = field(default_factory=lambda: [1])
    dtypes: list = field(default_factory=lambda: ["fp32"])
    backends: list = field(default_factory=list)
    device: str = "cpu"
    warmup: int = 1
    iters: int = 5
    threads: int = 0
    num_classes: int = 6
    in_channels: int = 3
    arch: str | None = None
    trusted: bool = False
    setup_timeout: float | None = None
    preset: str = "default"



def _row_parity(ref, out) -> dict:
    """The figures a row reports against fp32 eager (no verdict: rows are timed regardless)."""
    fig = parity_figures(ref, out)
    return {k: fig[k] for k in ("max_abs_err", "rel_err", "argmax_agreement", "finite")}

def best_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def make_config(*, preset: str = "default", device: str = "auto", models=None, sizes=None,
                batches=None, dtypes=None, backends=None, warmup=None, iters=None,
                threads=None, setup_timeout=None, **extra) -> BenchConfig:
    """A BenchConfig from a preset, with every explicitly given option taking precedence."""
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {list(PRESETS)}, got {preset!r}")
    p = PRESETS[preset]
    device = best_device() if device in (None, "auto") else device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda: torch sees no CUDA device")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"--device must be auto, cpu or cuda, got {device!r}")
    from ..models import list_models

    kind = "cuda" if device.startswith("cuda") else "cpu"
    w, n = p[kind]
    if setup_timeout is None:
        setup_timeout = p["setup_timeout"][kind]
    elif setup_timeout <= 0:
        setup_timeout = None
    if backends is None:
        if preset == "full":
            backends = C.full_backends(device)
        else:
            backends = C.default_backends(device)
    else:
        backends = C.parse_backends(backends, device)
    cfg = BenchConfig(models=list(models or p["models"] or list_models()),
                      sizes=list(sizes or p["sizes"]), batches=list(batches or [1]),
                      dtypes=list(dtypes or ["fp32"]), backends=list(backends), device=device,
                      warmup=w if warmup is None else warmup, iters=n if iters is None else iters,
                      threads=threads or torch.get_num_threads(), preset=preset,
                      setup_timeout=setup_timeout, **extra)
    for key in ("sizes", "batches"):
        if not all(isinstance(v, int) and v > 0 for v in getattr(cfg, key)):
            raise ValueError(f"--{key[:-1] if key == 'sizes' else 'batch'} values must be positive ints")
    bad = [d for d in cfg.dtypes if d not in C.DTYPES]
    if bad:
        raise ValueError(f"--dtype must be among {list(C.DTYPES)}, got {bad}")
    if cfg.iters < 1 or cfg.warmup < 0 or cfg.threads < 1:
        raise ValueError("--iters must be >= 1, --warmup >= 0, --threads >= 1")
    return cfg


def _sig(v: float, digits: int = 4) -> float:
    return float(f"{v:.{digits}g}")


def _first_tensor(out):
    if isinstance(out, torch.Tensor):
        return out
    leaves, _ = tree_flatten(out)
    for leaf in leaves:
        if isinstance(leaf, torch.Tensor) or hasattr(leaf, "__array__"):
            return leaf
    raise TypeError(f"the model returned {type(out).__name__} with no tensor in it")


def _gflops(model, x) -> float | None:
    """Forward GFLOPs of one image (torch.utils.flop_counter: 2 per multiply-add of
    conv, matmul and effseg's ops; elementwise work is not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            model(x[:1])
        return fc.get_total_flops() / 1e9
    except Exception:  # noqa: BLE001  a model the counter cannot trace still gets timed
        return None


def set_threads(n: int) -> dict:
    """One thread count for torch, effseg's C++ kernels and ONNX Runtime (passed per
    session); returns what each runtime reports."""
    from .. import _native

    torch.set_num_threads(n)
    eff = None
    if _native.available():
        _native.require().set_num_threads(n)
        eff = _native.require().get_num_threads()
    return {"requested": n, "torch": torch.get_num_threads(),
            "torch_interop": torch.get_num_interop_threads(), "effseg_cpp": eff,
            "onnxruntime_intra_op": n,
            # How idle OpenMP threads wait matters on a shared machine: spinning threads of
            # one pool slow the other's work many times over when cores are oversubscribed.
            "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY",
                                                   "GOMP_SPINCOUNT", "KMP_BLOCKTIME")}}


def versions() -> dict:
    from importlib import metadata

    out = {"python": sys.version.split()[0], "torch": torch.__version__}
    for dist in ("effseg", "numpy", "onnx", "onnxruntime", "onnxruntime-gpu", "onnxscript",
                 "triton", "tensorrt"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    if out["effseg"] is None:
        from .._version import __version__

        out["effseg"] = f"{__version__} (source tree)"
    out["cuda"] = torch.version.cuda
    return out


class _Progress:
    """tqdm on stderr when installed, else one line per finished row."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.done, self.bar = total, 0, None
        self.enabled = enabled
        if enabled:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, unit="row", file=sys.stderr, dynamic_ncols=True)
            except ImportError:
                pass

    def start(self, label: str):
        if self.bar is not None:
            self.bar.set_description_str(label)

    def finish(self, label: str, note: str):
        self.done += 1
        if self.bar is not None:
            self.bar.set_postfix_str(note)
            self.bar.update(1)
        elif self.enabled:
            print(f"[{self.done}/{self.total}] {label}: {note}", file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _row(ctx: C.Context, build, ref, base: dict, iters: int, warmup: int, host: HostPeak,
         setup_timeout: float | None = None) -> dict:
    row = dict(base, error=None)
    gc.collect()
    host.start()
    gpu_reset(ctx.device)
    runner = None
    t0 = time.perf_counter()
    try:
        with torch.no_grad():
            with C.deadline(setup_timeout):
                runner = build(ctx)
            row["setup_s"] = round(time.perf_counter() - t0, 3)
            out = _first_tensor((runner.output or runner.call)())  # parity, and a warm-up
            row.update(_row_parity(ref, out))
            times = sample_ms(runner.call, ctx.device, iters=iters, warmup=warmup)
        row.update(summarize(times))
        row.update(throughput(row["median_ms"], base["batch"], base["size"], base["size"]))
        row["info"] = runner.info
    except C.SetupTimeout as exc:
        row["error"] = f"timeout: {exc} (the limit is --setup-timeout)"
        row["setup_s"] = round(time.perf_counter() - t0, 3)
    except Exception as exc:  # noqa: BLE001  one backend's failure is a row, never the run's end
        kind = "unsupported" if isinstance(exc, C.Unsupported) else type(exc).__name__
        row["error"] = f"{kind}: {exc}".strip()[:500]
        row.setdefault("setup_s", round(time.perf_counter() - t0, 3))
    finally:
        peak, start = host.stop()
        row["host_peak_rss_mb"] = round(peak, 1)
        row["host_rss_increase_mb"] = round(max(peak - start, 0.0), 1)
        gpu = gpu_peak_mb(ctx.device) if runner is None or runner.torch_memory else None
        row["gpu_peak_mb"] = None if gpu is None else round(gpu, 1)
        del runner
    for key in ROW_KEYS:  # failed rows carry every key too, as None
        row.setdefault(key, None)
    return row


def _speedups(rows: list[dict]) -> None:
    """speedup_vs_eager: eager at the row's dtype (else fp32 eager) over the row's median;
    speedup_vs_best_peer: the fastest peer at the row's dtype over the row's median."""
    ok = [r for r in rows if r["error"] is None]
    for r in rows:
        r.update(speedup_vs_eager=None, speedup_vs_best_peer=None, eager_baseline=None, best_peer=None)
        if r["error"] is not None:
            continue
        same = [o for o in ok if (o["model"], o["size"], o["batch"]) == (r["model"], r["size"], r["batch"])]
        eager = ({o["dtype"]: o for o in same if o["backend"] == "eager"})
        base = eager.get(r["dtype"]) or eager.get("fp32")
        if base is not None:
            r["speedup_vs_eager"] = base["median_ms"] / r["median_ms"]
            r["eager_baseline"] = f"eager {base['dtype']}"
        peers = [o for o in same if o["dtype"] == r["dtype"] and C.is_peer(o["backend"])]
        if peers:
            best = min(peers, key=lambda o: o["median_ms"])
            r["speedup_vs_best_peer"] = best["median_ms"] / r["median_ms"]
            r["best_peer"] = best["backend"]


def open_gates(model, value: float = 0.5) -> None:
    """Attention gates (GeoSeg's gamma) start at 0, which makes the attention output
    vanish from the parity figures; open them, as training does."""
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.rsplit(".", 1)[-1] == "gamma":
                p.fill_(value)


def _open_gates(spec) -> None:
    if spec.source == "zoo":
        open_gates(spec.module)


def run_model_bench(cfg: BenchConfig, *, progress: bool = True,
                    builders: dict[str, Callable] | None = None) -> dict:
    """Run every (model, size, batch, dtype, backend) of cfg; return the result dict."""
    from ..models import count_parameters
    from ..models.spec import resolve

    builders = {**C.BUILDERS, **(builders or {})}
    threads = set_threads(cfg.threads)
    specs = [resolve(m, num_classes=cfg.num_classes, in_channels=cfg.in_channels, arch=cfg.arch,
                     trusted=cfg.trusted) for m in cfg.models]
    per_model = len(cfg.sizes) * len(cfg.batches) * len(cfg.dtypes) * len(cfg.backends)
    bar = _Progress(len(specs) * per_model, progress)
    host = HostPeak()
    rows, t_start = [], time.perf_counter()
    try:
        for spec in specs:
            model = spec.module.eval().to(cfg.device)
            for p in model.parameters():
                p.requires_grad_(False)
            _open_gates(spec)
            params_m = count_parameters(model) / 1e6
            for size in cfg.sizes:
                g = torch.Generator().manual_seed(0)
                x1 = torch.randn(1, cfg.in_channels, size, size, generator=g).to(cfg.device)
                gflops = _gflops(model, x1)
                for batch in cfg.batches:
                    g = torch.Generator().manual_seed(0)
                    x32 = torch.randn(batch, cfg.in_channels, size, size, generator=g).to(cfg.device)
                    try:
                        with torch.no_grad():
                            ref = _first_tensor(model(x32))
                    except RuntimeError as exc:
                        raise ValueError(f"--model {spec.label}: the eager forward pass on a "
                                         f"{tuple(x32.shape)} input failed ({exc}); check "
                                         "--in-channels and --size") from exc
                    group = []
                    for dtype in cfg.dtypes:
                        half = dtype == "fp16"
                        m_d = copy.deepcopy(model).half() if half else model
                        x_d = x32.half() if half else x32
                        ctx = C.Context(m_d, x_d, model, x32, cfg.device, dtype, cfg.threads)
                        for backend in cfg.backends:
                            label = f"{spec.label} {size}x{size} b{batch} {dtype} {backend}"
                            bar.start(label)
                            base = {"model": spec.label, "size": size, "batch": batch,
                                    "dtype": dtype, "backend": backend,
                                    "kind": "peer" if C.is_peer(backend) else "effseg",
                                    "device": cfg.device, "params_m": _sig(params_m),
                                    "gflops": None if gflops is None else _sig(gflops)}
                            row = _row(ctx, builders[backend], ref, base, cfg.iters, cfg.warmup,
                                       host, cfg.setup_timeout)
                            group.append(row)
                            bar.finish(label, row["error"] or f"{row['median_ms']:.1f} ms")
                        del m_d, ctx
                    _speedups(group)
                    rows += group
    finally:
        bar.close()
    return {
        "bench": "model", "schema": SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "device": cfg.device, "machine": machine(cfg.device), "versions": versions(),
        "threads": threads, "allocator": allocator(), "omp_wait": omp_wait(), "config": asdict(cfg),
        "method": method_text(cfg, host.method), "wall_s": round(time.perf_counter() - t_start, 1),
        "rows": rows,
    }


def method_text(cfg: BenchConfig, memory_method: str) -> dict:
    timer = ("CUDA events around each call, device synchronised before each call and on "
             "its end event" if cfg.device.startswith("cuda") else "time.perf_counter around each call")
    return {
        "timing": (f"per call: {timer}; one untimed call for parity, then {cfg.warmup} untimed "
                   f"warm-up call(s), then {cfg.iters} timed calls; median, p90, p99 "
                   "(linear interpolation, numpy's default) over the timed calls; all backends "
                   "of a model side by side in one process under torch.no_grad"),
        "setup": ("setup_s: building the backend (torch.compile's first call, ONNX export and "
                  "session creation, effseg.compile) before any timed call; limit "
                  f"{cfg.setup_timeout or 'none'} s, past which the row is a timeout"),
        "parity": "against fp32 eager on the same input: max |out - eager|, relative to max "
                  "|eager|, and the share of pixels whose class argmax agrees; the onnxruntime "
                  "peer's export is also checked against eager on a second input",
        "memory": (f"host_peak_rss_mb: process peak resident set during the row ({memory_method}); "
                   "it includes the interpreter, torch and memory the allocator kept from earlier "
                   "rows; host_rss_increase_mb is the rise over the row's start. gpu_peak_mb: "
                   "torch's CUDA allocator peak (None for ONNX Runtime / TensorRT, which allocate "
                   "outside it)"),
        "flops": "GFLOPs of one image via torch.utils.flop_counter (2 per multiply-add)",
        "weights": "seeded random weights (create_model seed 0), GeoSeg attention gates set to "
                   "0.5; input torch.randn seed 0",
    }
