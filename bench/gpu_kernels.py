"""Stage 2 of bench/gpu_check.sh: every GPU kernel against its anchors on this machine
(effseg.bench.gpu_kernels), one JSON rewritten after each kernel so that a stop part-way
keeps what ran.

    python bench/gpu_kernels.py --out kernels.json                 # CUDA, fp32 fp16 bf16
    python bench/gpu_kernels.py --dry-run --out kernels.json       # CPU, Triton interpreter, tiny

Exit status: 0 when it ran to the end (kernels that failed are error entries in the JSON),
3 when a CUDA error left the context unusable (run it again with --resume: the kernels
already in the JSON are kept and the rest run in a fresh process), 130 when interrupted.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KERNEL_NAMES = ("selective_scan", "cross_selective_scan", "linear_attention", "depthwise_conv2d",
                "winograd_conv2d", "distance_transform", "losses")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--device", default=None, help="default cuda (cpu with --dry-run)")
    p.add_argument("--dry-run", action="store_true",
                   help="tiny shapes on CPU through Triton's interpreter: seconds, proves the paths")
    p.add_argument("--dtypes", nargs="+", default=None, choices=["fp32", "fp16", "bf16"],
                   help="default fp32 fp16 bf16 (fp32 fp16 in a dry run: the interpreter has no bf16)")
    p.add_argument("--kernels", nargs="+", default=list(KERNEL_NAMES), choices=KERNEL_NAMES)
    p.add_argument("--resume", action="store_true", help="keep the kernels already in --out")
    args = p.parse_args(argv)
    device = args.device or ("cpu" if args.dry_run else "cuda")
    if device == "cpu":
        # Chosen before anything imports triton, or the kernels want a GPU.
        os.environ.setdefault("TRITON_INTERPRET", "1")
    dtypes = args.dtypes or (["fp32", "fp16"] if args.dry_run else ["fp32", "fp16", "bf16"])

    import torch

    from effseg.bench import gpu_kernels as G

    if device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_kernels: torch sees no CUDA device (use --dry-run on a CPU machine)", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(out.read_text()) if args.resume and out.exists() else {}
    timer, timer_doc = G.make_timer(device)
    result = {"bench": "gpu_kernels", "schema": 1, "device": device,
              "dry_run": args.dry_run, "quick": args.dry_run,  # perf_report skips quick files
              "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": G.machine_info(device), "dtypes": dtypes,
              "method": (f"{timer_doc}; every impl called once untimed first (its output is "
                         "compared with effseg's: max |diff| / max |effseg|), under torch.no_grad"),
              "kernels": dict(old.get("kernels", {}))}
    for name in args.kernels:
        if name in result["kernels"]:
            continue
        print(f"[gpu_kernels] {name} ...", flush=True)
        t0 = time.perf_counter()
        try:
            entry = G.run_kernel(name, device, dtypes, args.dry_run, timer)
        except KeyboardInterrupt:  # the stage's time limit (timeout -s INT)
            result["kernels"][name] = {"error": "interrupted: the stage's time limit",
                                       "wall_s": round(time.perf_counter() - t0, 2)}
            result["interrupted"] = name
            _write(out, result)
            return 130
        result["kernels"][name] = entry
        _write(out, result)
        print(f"[gpu_kernels] {name}: {_brief(entry)} in {entry['wall_s']:.1f} s", flush=True)
        if "error" in entry and G.cuda_poisoned(device):
            result["poisoned_after"] = name
            _write(out, result)
            return 3
    return 0


def _brief(entry: dict) -> str:
    if "error" in entry:
        return "error: " + entry["error"][:200]
    rows = entry.get("rows") or entry.get("results") or []
    bad = sum(1 for r in rows if "error" in r)
    return f"{len(rows)} rows" + (f", {bad} with errors" if bad else "")


def _write(path: Path, result: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(path)  # never a half-written file, whenever the stage is stopped


if __name__ == "__main__":
    sys.exit(main())
