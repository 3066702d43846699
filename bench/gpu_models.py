"""Stage 3 of bench/gpu_check.sh: `effseg bench` on CUDA (fp32, then fp16; three zoo
models; every usable backend, effseg.inductor's CUDA graphs included), one (dtype, model)
group at a time in one process, models.json rewritten after each group so that the
stage's time limit costs at most the group it interrupts.

    python bench/gpu_models.py --out-dir OUT             # CUDA
    python bench/gpu_models.py --out-dir OUT --dry-run   # CPU, one tiny model, eager only
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

# Most evidence first: the models whose effseg kernels differ most (Mamba scan, linear
# attention) before the third; fp32 of every model before any fp16; effseg's own rows and
# eager before the peers whose setup (a cold Inductor compile, an ONNX export) is slow.
MODELS = ("unetformer", "cmunet", "abcnet")
BACKEND_ORDER = ("eager", "effseg.eager", "effseg.inductor", "torch.compile", "effseg.tensorrt",
                 "onnxruntime", "effseg.onnxruntime")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--models", nargs="+", default=None)
    p.add_argument("--dtypes", nargs="+", default=None, choices=["fp32", "fp16"])
    p.add_argument("--size", type=int, default=None)
    p.add_argument("--iters", type=int, default=None)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--setup-timeout", type=float, default=60.0,
                   help="per backend (s): one slow compile must not take the whole stage")
    args = p.parse_args(argv)

    from effseg.bench import contenders as C
    from effseg.bench.model_bench import make_config, run_model_bench

    device = "cpu" if args.dry_run else "cuda"
    if args.dry_run:
        models, dtypes, size, iters, warmup = ["unetformer-dw"], ["fp32"], 64, 1, 0
        # eager only: effseg.compile's export costs ~15 s on a busy 2-core machine and has
        # its own tests; the dry run proves the stage's plumbing.
        backends = ["eager"]
    else:
        models, dtypes, size, iters, warmup = list(MODELS), ["fp32", "fp16"], 512, 20, 3
        usable = C.default_backends(device)
        backends = [b for b in BACKEND_ORDER if b in usable] + [b for b in usable if b not in BACKEND_ORDER]
    models, dtypes = args.models or models, args.dtypes or dtypes
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    merged = None
    try:
        for dtype in dtypes:
            for model in models:
                t0 = time.perf_counter()
                print(f"[gpu_models] {model} {dtype} ...", flush=True)
                cfg = make_config(device=device, models=[model], sizes=[args.size or size],
                                  dtypes=[dtype], backends=backends, iters=args.iters or iters,
                                  warmup=warmup if args.warmup is None else args.warmup,
                                  setup_timeout=args.setup_timeout)
                part = run_model_bench(cfg, progress=False)
                merged = merge(merged, part, args.dry_run)
                _write(out_dir / "models.json", merged)
                bad = sum(1 for r in part["rows"] if r.get("error"))
                print(f"[gpu_models] {model} {dtype}: {len(part['rows'])} rows, {bad} errors, "
                      f"{time.perf_counter() - t0:.0f} s", flush=True)
    except KeyboardInterrupt:  # the stage's time limit: the groups done are on disk
        print("[gpu_models] interrupted by the stage's time limit", flush=True)
        if merged is not None:
            merged["interrupted"] = True
            _write(out_dir / "models.json", merged)
        _plot(merged, out_dir)
        return 130
    _plot(merged, out_dir)
    return 0


def merge(merged: dict | None, part: dict, dry_run: bool) -> dict:
    """One `effseg bench` result from the groups (the README's table reads one per device)."""
    if merged is None:
        merged = dict(part, rows=[], wall_s=0.0, groups=[])
        merged["config"] = dict(part["config"], models=[], dtypes=[])
        if dry_run:
            merged["quick"] = True  # never a README table
    merged["rows"] += part["rows"]
    merged["wall_s"] = round(merged["wall_s"] + part["wall_s"], 1)
    for key in ("models", "dtypes"):
        merged["config"][key] += [v for v in part["config"][key] if v not in merged["config"][key]]
    merged["groups"].append({"models": part["config"]["models"], "dtypes": part["config"]["dtypes"],
                             "wall_s": part["wall_s"]})
    return merged


def _write(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)


def _plot(merged: dict | None, out_dir: Path) -> None:
    if not merged or not merged["rows"]:
        return
    try:
        from effseg.bench.report_table import plot

        print(f"wrote {plot(merged, out_dir / 'models.png')}")
    except Exception as exc:  # noqa: BLE001  no matplotlib: the JSON is what counts
        print(f"no plot: {type(exc).__name__}: {exc}")


if __name__ == "__main__":
    sys.exit(main())
