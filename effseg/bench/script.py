"""The scaffold of every benchmark script under bench/ and of `effseg bench --op`: the
malloc re-exec, the common flags (--device, --quick, --repeats, --threads, --out), one
call into effseg/bench/<op>.py and the JSON under bench/results/.

An op module provides run(args) -> result dict and targets(result) -> dict (the issue's
goals as figures and flags), and optionally add_arguments(parser) for flags of its own and
report(result, args) -> str, a summary printed after the JSON is written. STUDIES are
modules of the same shape that are not kernel ops (not offered by `effseg bench --op`).
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

OPS = ("selective_scan", "cross_selective_scan", "linear_attention", "depthwise_conv2d",
       "winograd_conv2d", "distance_transform", "losses")
STUDIES = ("train", "predict", "mamba_runtime")
# Far above any buffer a benchmark allocates: glibc then keeps freed blocks for reuse.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "17179869184", "MALLOC_TRIM_THRESHOLD_": "17179869184"}
MALLOC_VARS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_ARENA_MAX",
               "MALLOC_TOP_PAD_", "LD_PRELOAD")


# How idle OpenMP threads wait (libgomp and Intel's runtime read these once, at load).
# Unset, libgomp spins ~300000 pauses before sleeping: on a shared 2-core machine the
# spinning threads hold the core a descheduled team member needs, and eager rows read
# 4-20x slower with one competing process; passive waiting instead costs eager PyTorch
# about 2x on a quiet machine. The benchmarks leave the caller's choice and record it.
WAIT_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")

# --isa avx2 on an AVX-512 machine: an AVX2 machine as closely as one process can be made
# one. EFFSEG_SIMD caps effseg's kernels; ATEN_CPU_CAPABILITY caps PyTorch's own vector
# kernels and ONEDNN_MAX_CPU_ISA its oneDNN convolutions and matmuls, so the PyTorch
# peers drop to AVX2 too: capping effseg alone would race an AVX2 kernel against an
# AVX-512 peer, which no AVX2 machine does. OpenVINO's CPU plugin (its own oneDNN) honours
# ONEDNN_MAX_CPU_ISA too (its profile says brgconv_avx2 under the cap, measured 2026-12-08);
# ONNX Runtime (MLAS) reads no such variable and keeps the machine's best ISA; the JSON says so.
ISA_ENV = {"avx2": {"EFFSEG_SIMD": "avx2", "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}}
ISA_UNCAPPED = ("ONNX Runtime (MLAS) picks its kernels by CPUID and is not capped; OpenVINO's oneDNN "
                "honours ONEDNN_MAX_CPU_ISA")


def isa_arg(args: list[str]) -> str:
    """The value of --isa in a raw argument list ("native" when absent)."""
    for i, a in enumerate(args):
        if a == "--isa" and i + 1 < len(args):
            return args[i + 1]
        if a.startswith("--isa="):
            return a.split("=", 1)[1]
    return "native"


def isa_env() -> dict:
    """What capped the ISAs of this run (the --isa variables as the process has them)."""
    names = sorted({k for v in ISA_ENV.values() for k in v})
    env = {k: os.environ.get(k) for k in names}
    return {"env": env, "uncapped": ISA_UNCAPPED if any(env.values()) else None}


def reexec_with_raised_malloc(args: list[str], label: str) -> None:
    """Restart this process once with glibc's malloc thresholds raised (unless set already;
    no restart with EFFSEG_BENCH_NO_REEXEC=1). OpenMP's wait policy is left as the caller
    has it: OMP_WAIT_POLICY=PASSIVE halved eager PyTorch's quiet speed on the 2-core Xeon
    (bench/results/contention-cpu.json), so setting it would time the eager peer slower
    than a plain `import torch` runs it. args: what follows the interpreter's flags (a script path,
    or "-m", a module), then its arguments.

    glibc's defaults return large freed blocks to the OS and page-faults them back on every
    call (eager PyTorch 10-25x slower on the 2-core machines, ARCHITECTURE.md), and glibc reads the
    thresholds only at start-up; OpenMP reads its wait policy at load.
    allocator() and omp_wait() record the settings in the JSON."""
    if not sys.platform.startswith("linux") or os.environ.get("EFFSEG_BENCH_NO_REEXEC"):
        return
    env = dict(os.environ)
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") is None:
        env.update(MALLOC_ENV, EFFSEG_BENCH_MALLOC=f"{label} (re-executed with raised thresholds)")
    # PyTorch and oneDNN read their ISA caps at load, so --isa needs the restart too.
    env.update(ISA_ENV.get(isa_arg(args), {}))
    if env == os.environ:
        return
    # -P keeps the working folder (or the script's) off sys.path, so a stray torch.py there
    # cannot load; Python 3.10 has no -P, and -I does the same (ignoring PYTHON* as well).
    flag = "-P" if sys.version_info >= (3, 11) else "-I"
    root = str(Path(__file__).resolve().parents[2])
    if flag == "-P" and sys.path and os.path.realpath(sys.path[0] or os.getcwd()) == os.path.realpath(root):
        # This effseg came from the folder -P drops (an uninstalled checkout): name it, so
        # that the same effseg runs again.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, flag, *args], env)


def child_python(env: dict | None = None) -> tuple[list[str], dict]:
    """(argv prefix, environment) for a child interpreter that imports this process's
    effseg and no code from the working folder (-P; -I on Python 3.10): `python -c` would
    put the folder first on sys.path, and a source checkout there shadows the installed
    package (no effseg._C in it) or plants a module."""
    env = dict(os.environ if env is None else env)
    flag = "-P" if sys.version_info >= (3, 11) else "-I"
    root = str(Path(__file__).resolve().parents[2])
    if any(os.path.realpath(p or os.getcwd()) == os.path.realpath(root) for p in sys.path):
        # This effseg came from a plain folder on sys.path (an uninstalled checkout): name it.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return [sys.executable, flag], env


def allocator() -> dict:
    env = {k: os.environ.get(k) for k in MALLOC_VARS}
    return {"env": env, "set_by": os.environ.get("EFFSEG_BENCH_MALLOC") or
            ("environment" if env["MALLOC_MMAP_THRESHOLD_"] else None)}


def omp_wait() -> dict:
    """How OpenMP's idle threads waited in this run, and who chose it (the re-exec, the
    caller's environment, or nobody: the runtime's default spinning)."""
    env = {k: os.environ.get(k) for k in WAIT_VARS}
    return {"env": env, "set_by": os.environ.get("EFFSEG_BENCH_OMP_WAIT") or
            ("environment" if any(env.values()) else None)}


def common_parser(doc: str | None, quick_help: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--quick", action="store_true", help=quick_help)
    p.add_argument("--repeats", type=int, default=5, help="timed calls per case, at least (default 5)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch and effseg's C++ kernels (default: their own); "
                        "the JSON name gets -t<threads>")
    p.add_argument("--out", default=None,
                   help="the JSON file (default: bench/results/<name>-<device>[-<isa>][-t<threads>][-quick].json)")
    add_isa_argument(p)
    return p


def add_isa_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--isa", default="native", choices=["native", *ISA_ENV],
                   help="native (default): every library's best ISA on this CPU; avx2: effseg's kernels, "
                        "PyTorch's and oneDNN's capped at AVX2 (EFFSEG_SIMD, ATEN_CPU_CAPABILITY, "
                        "ONEDNN_MAX_CPU_ISA; set by a restart) to run an AVX2 machine's paths on an "
                        "AVX-512 one; the JSON name gets -avx2")


def result_path(results: Path, name: str, args: argparse.Namespace) -> Path:
    """A quick run gets its own -quick name (git and bench/report.py ignore those), so
    that it never overwrites a full run's result."""
    if args.out:
        return Path(args.out)
    isa = getattr(args, "isa", "native")
    suffix = ((f"-{isa}" if isa != "native" else "") + (f"-t{args.threads}" if args.threads else "")
              + ("-quick" if args.quick else ""))
    return Path(results) / f"{name}-{args.device}{suffix}.json"


def threads_now() -> dict:
    import torch

    from .. import _native

    return {"torch": torch.get_num_threads(),
            "effseg": _native.require().get_num_threads() if _native.available() else None}


def write_json(result: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def prepare(args: argparse.Namespace) -> argparse.Namespace:
    """Act on the common flags before a run: the device must exist, --threads applies."""
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"--device {args.device} requested but torch sees no CUDA device")
    if args.threads:
        from .model_bench import set_threads

        set_threads(args.threads)
    return args


def op_module(op: str):
    if op not in OPS + STUDIES:
        raise ValueError(f"op must be one of {', '.join(OPS + STUDIES)}; got {op!r}")
    return importlib.import_module(f"{__package__}.{op}")


def op_parser(op: str, doc: str | None = None) -> argparse.ArgumentParser:
    mod = op_module(op)
    p = common_parser(doc or mod.__doc__, getattr(mod, "QUICK_HELP", "tiny shapes, a smoke run"))
    if hasattr(mod, "add_arguments"):
        mod.add_arguments(p)
    return p


def run_op(op: str, argv: list[str], doc: str | None = None) -> tuple[dict, argparse.Namespace]:
    """Parse argv with the op's parser, run it; the result with its targets, the arguments."""
    args = prepare(op_parser(op, doc).parse_args(argv))
    result = op_module(op).run(args)
    result["targets"] = op_module(op).targets(result)
    result.setdefault("threads", threads_now())
    result["quick"] = bool(args.quick)
    result["allocator"] = allocator()
    result["omp_wait"] = omp_wait()
    result["isa_caps"] = isa_env()
    return result, args


def run_script(op: str, doc: str | None, results: Path, argv: list[str] | None = None) -> int:
    """bench/bench_<op>.py: re-exec, run, print the targets, write the JSON."""
    reexec_with_raised_malloc(sys.argv, f"bench/bench_{op}.py")
    doc = f"{doc}\nThe code is effseg/bench/{op}.py" + (f" (`effseg bench --op {op}` runs it too)." if op in OPS
                                                    else ".")
    result, args = run_op(op, sys.argv[1:] if argv is None else argv, doc)
    print(json.dumps(result["targets"], indent=2))
    name = getattr(op_module(op), "RESULT_NAME", op)
    print(f"wrote {write_json(result, result_path(results, name, args))}")
    if hasattr(op_module(op), "report"):
        print(op_module(op).report(result, args))
    return 0
