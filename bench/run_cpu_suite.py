"""The benchmark suite in one command: every kernel benchmark (bench/bench_<op>.py) and the
model benchmark (`effseg bench`), each in its own process, collected into
bench/results/<suite>-<machine>-<YYYYMMDD>.json with two plots next to it
(<...>-models.png: latency per backend; <...>-kernels.png: effseg's speed-up per kernel).

    python bench/run_cpu_suite.py             # the CPU suite (tens of minutes on 2 cores)
    python bench/run_cpu_suite.py --quick     # smoke run: small shapes, `effseg bench --quick`
    python bench/run_cpu_suite.py --device cuda --dtype fp32 fp16   # the whole suite on a GPU (long;
                                                                    # bench/gpu_check.sh is the short check)

Then `python bench/report.py` regenerates the README's performance section. A quick run
writes <...>-quick.json, which the report ignores.
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# This checkout's effseg, unless its native module is not built here and an installed
# effseg is (as after `pip install --no-build-isolation --no-deps .` on a GPU machine).
_FROM_CHECKOUT = bool(list((ROOT / "effseg").glob("_C*"))) or importlib.util.find_spec("effseg") is None
if _FROM_CHECKOUT:
    sys.path.insert(0, str(ROOT))

from effseg._timing import machine
from effseg.bench.script import MALLOC_ENV

# op name -> (script, extra arguments for --quick)
KERNELS = {
    "selective_scan": ("bench_selective_scan.py", ["--lengths", "512", "--repeats", "3"]),
    "cross_selective_scan": ("bench_cross_selective_scan.py", ["--quick"]),
    "linear_attention": ("bench_linear_attention.py", ["--quick"]),
    "depthwise_conv2d": ("bench_depthwise_conv2d.py", ["--quick"]),
    "winograd_conv2d": ("bench_winograd_conv2d.py", ["--quick"]),
    "distance_transform": ("bench_distance_transform.py", ["--quick"]),
    "losses": ("bench_losses.py", ["--quick"]),
}


def slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s[:40].rstrip("-") or "unknown"


def _env() -> dict:
    env = dict(os.environ)
    # The allocator setting every bench script and `effseg bench` use (ARCHITECTURE.md); set
    # here so that no child re-executes itself.
    for k, v in MALLOC_ENV.items():
        env.setdefault(k, v)
    if _FROM_CHECKOUT:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _run(cmd: list[str], log) -> tuple[int, float]:
    t0 = time.perf_counter()
    print("$ " + " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, check=False, cwd=ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT)
    return proc.returncode, time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--quick", action="store_true", help="small shapes everywhere: minutes, a smoke run")
    p.add_argument("--ops", nargs="+", default=list(KERNELS), choices=list(KERNELS))
    p.add_argument("--no-kernels", action="store_true")
    p.add_argument("--no-models", action="store_true")
    p.add_argument("--dtype", nargs="+", default=["fp32"], help="model bench precisions")
    p.add_argument("--results", default=str(ROOT / "bench" / "results"))
    args = p.parse_args(argv)

    suite = "gpu" if args.device.startswith("cuda") else "cpu"
    m = machine(args.device)
    name = f"{suite}-{slug(m.get('gpu') or m['processor'])}-{dt.date.today():%Y%m%d}"
    name += "-quick" if args.quick else ""
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="effseg-suite-"))
    log_path = work / f"{name}.log"
    out = {"suite": suite, "quick": args.quick, "device": args.device, "machine": m,
           "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
           "kernels": {}, "models": None, "runs": {}}
    with open(log_path, "w") as log:
        if not args.no_kernels:
            for op in args.ops:
                script, quick_args = KERNELS[op]
                dest = work / f"{op}.json"
                cmd = [sys.executable, str(ROOT / "bench" / script), "--device", args.device,
                       "--out", str(dest), *(quick_args if args.quick else [])]
                rc, secs = _run(cmd, log)
                out["runs"][op] = {"returncode": rc, "wall_s": round(secs, 1)}
                if rc == 0 and dest.exists():
                    out["kernels"][op] = json.loads(dest.read_text())
                print(f"  {op}: {'ok' if rc == 0 else f'failed (rc {rc}, see {log_path})'} "
                      f"in {secs:.0f} s", flush=True)
        if not args.no_models:
            dest = work / "models.json"
            cmd = [sys.executable, "-m", "effseg.cli", "bench", "--device", args.device,
                   "--dtype", *args.dtype, "--out", str(dest), "--no-progress",
                   *(["--quick"] if args.quick else [])]
            rc, secs = _run(cmd, log)
            out["runs"]["models"] = {"returncode": rc, "wall_s": round(secs, 1)}
            if rc == 0 and dest.exists():
                out["models"] = json.loads(dest.read_text())
            print(f"  effseg bench: {'ok' if rc == 0 else f'failed (rc {rc})'} in {secs:.0f} s",
                  flush=True)
    path = results / f"{name}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path} (log: {log_path})")
    _plots(out, results / name)
    return 0 if all(r["returncode"] == 0 for r in out["runs"].values()) else 1


def _plots(out: dict, stem: Path) -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("no plots: matplotlib is not installed (pip install 'effseg[bench]')")
        return
    from effseg.bench.perf_report import _add, kernel_plot
    from effseg.bench.report_table import plot

    if out["models"]:
        print(f"wrote {plot(out['models'], stem.with_name(stem.name + '-models.png'))}")
    src = {"kernels": {}, "model_bench": {}, "zoo": {}}
    for res in out["kernels"].values():
        _add(src, dict(res, quick=False), "")
    done = kernel_plot(src, stem.with_name(stem.name + "-kernels.png"), out["suite"])
    if done:
        print(f"wrote {done}")


if __name__ == "__main__":
    sys.exit(main())
