"""Winograd F(4x4, 3x3) conv: effseg (C++ + torch.bmm on CPU, Triton on CUDA) vs F.conv2d
(oneDNN) vs the op's reference, side by side, at the 3 x 3 layers of a ResNet-18
UNetFormer at 512 x 512 (batch 1).

Writes bench/results/winograd_conv2d-<device>.json.
Run:  python bench/bench_winograd_conv2d.py [--device cuda] [--threads N] [--quick]
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

from effseg.bench.winograd_conv2d import (
    WINO_EPILOGUES,
    WINO_QUICK_SHAPES,
    WINO_SHAPES,
    bench_winograd_conv2d,
)

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_RATIO = 1.5  # the CPU target: >= 1.5x F.conv2d for the 64-256-channel layers
TARGET_CHANNELS = (64, 256)


def targets(result: dict) -> dict:
    """The issue's CPU target: winograd >= 1.5x faster than F.conv2d (+ relu) for every
    layer with 64 to 256 input channels, both epilogues."""
    lo, hi = TARGET_CHANNELS
    rows = [r for r in result["results"] if lo <= r["shape"][0] <= hi]
    flags = {f"{'x'.join(map(str, r['shape']))} {r['epilogue']}": r["ratio"] >= TARGET_RATIO
             for r in rows}
    return {"target": f"winograd >= {TARGET_RATIO}x F.conv2d for {lo}-{hi}-channel layers",
            "target_ratio": TARGET_RATIO,
            "ratios": {f"{'x'.join(map(str, r['shape']))} {r['epilogue']}": round(r["ratio"], 3)
                       for r in result["results"]},
            "min_ratio_64_256ch": min((r["ratio"] for r in rows), default=None),
            "met": flags,
            "all_met": bool(flags) and all(flags.values())}


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for both torch and effseg (default: their own defaults); "
                        "the JSON name gets a -t<threads> suffix")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: two small shapes, no JSON unless --out is given")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    shapes = WINO_QUICK_SHAPES if args.quick else WINO_SHAPES
    result = bench_winograd_conv2d(args.device, shapes, WINO_EPILOGUES, repeats=args.repeats,
                                   threads=args.threads)
    result["targets"] = targets(result)
    print(json.dumps(result["targets"], indent=2))
    if args.quick and args.out is None:
        return
    suffix = f"-t{args.threads}" if args.threads else ""
    out = Path(args.out) if args.out else RESULTS / f"winograd_conv2d-{args.device}{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
