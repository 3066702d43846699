"""Model zoo, eager CPU (or GPU) latency at 512x512, batch 1: every registered model with
effseg's kernels vs the same architecture and weights on the reference ops.

Writes bench/results/models-<device>.json. Run:
    python bench/bench_models.py [--device cuda] [--models unetformer,cmunet] [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

# glibc's default malloc returns big buffers to the OS and page-faults them back on every
# call (measured 10-25x slower eager PyTorch here); raise the thresholds before start-up.
if os.environ.get("MALLOC_MMAP_THRESHOLD_") is None:
    os.environ.update(MALLOC_MMAP_THRESHOLD_="17179869184", MALLOC_TRIM_THRESHOLD_="17179869184")
    os.execv(sys.executable, [sys.executable, *sys.argv])

from effseg.bench.models import bench_models

RESULTS = Path(__file__).resolve().parent / "results"


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--models", default=None, help="comma-separated names (default: all)")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--quick", action="store_true", help="128x128, few repeats (a smoke run)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    names = args.models.split(",") if args.models else None
    size = 128 if args.quick else args.size
    result = bench_models(names, args.device, size=size,
                          repeats=1 if args.quick else args.repeats)
    summary = {r["model"]: dict(effseg_ms=round(r["effseg_ms"], 1), ref_ms=round(r["ref_ms"], 1),
                                speedup=round(r["speedup_vs_ref"], 2))
               for r in result["results"]}
    result["summary"] = summary
    out = Path(args.out) if args.out else RESULTS / f"models-{args.device}.json"
    if args.quick and not args.out:
        out = RESULTS / f"models-{args.device}-quick.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
