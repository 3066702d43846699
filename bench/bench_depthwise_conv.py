"""Depthwise conv: effseg (C++ on CPU, Triton on CUDA) vs F.conv2d (+ activation), side by side.

Writes bench/results/depthwise_conv-<device>.json.
Run:  python bench/bench_depthwise_conv.py [--device cuda] [--quick]
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

from effseg.bench.depthwise_conv import (
    DW_EPILOGUES,
    DW_KERNELS,
    DW_SHAPES,
    bench_depthwise_conv,
)

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_RATIO = 1.5  # the CPU target: >= 1.5x F.conv2d (+ activation) for k >= 5


def targets(result: dict) -> dict:
    """The issue's CPU target: effseg >= 1.5x faster than F.conv2d (+ the separate
    activation op where fused) for k >= 5 at both shapes, every epilogue."""
    rows = [r for r in result["results"] if r["k"] >= 5]
    if not rows:
        return {}
    flags = {f"{'x'.join(map(str, r['shape']))} k={r['k']} {r['epilogue']}": r["ratio"] >= TARGET_RATIO
             for r in rows}
    plain = [r["ratio"] for r in rows if r["epilogue"] == "none"]
    return {"target_ratio": TARGET_RATIO,
            "min_ratio_k>=5": min(r["ratio"] for r in rows),
            "min_ratio_k>=5_plain_conv": min(plain) if plain else None,
            "ratio_k3": {f"{'x'.join(map(str, r['shape']))} {r['epilogue']}": r["ratio"]
                         for r in result["results"] if r["k"] == 3},
            "met": flags,
            "all_met": all(flags.values())}


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cpu")
    p.add_argument("--kernels", type=int, nargs="+", default=list(DW_KERNELS))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for both torch and effseg (default: their own defaults); "
                        "the JSON name gets a -t<threads> suffix")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: small shapes, k=5 only, no JSON unless --out is given")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    shapes, kernels = DW_SHAPES, tuple(args.kernels)
    if args.quick:
        shapes, kernels = ((1, 16, 32, 32),), (5,)
    result = bench_depthwise_conv(args.device, shapes, kernels, DW_EPILOGUES, repeats=args.repeats,
                                  threads=args.threads)
    result["targets"] = targets(result)
    print(json.dumps(result["targets"], indent=2))
    if args.quick and args.out is None:
        return
    suffix = f"-t{args.threads}" if args.threads else ""
    out = Path(args.out) if args.out else RESULTS / f"depthwise_conv-{args.device}{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
