"""SS2D (VMamba 2-D selective-scan block) at CM-UNet's decoder stages: effseg's fused block
vs the block composed on the reference scan and on the C++ scan, side by side.

Writes bench/results/ss2d-<device>.json. Run:  python bench/bench_ss2d.py [--device cuda] [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

# glibc's default malloc page-faults big buffers back on every call; see bench_selective_scan.py.
if os.environ.get("MALLOC_MMAP_THRESHOLD_") is None:
    os.environ.update(MALLOC_MMAP_THRESHOLD_="17179869184", MALLOC_TRIM_THRESHOLD_="17179869184")
    os.execv(sys.executable, [sys.executable, *sys.argv])

from effseg.bench.ss2d import CMUNET_STAGES_512, QUICK_STAGES, bench_ss2d  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def targets(result: dict) -> dict:
    """The issue's CPU target: SS2D >= 20x an SS2D built on the reference scan."""
    fused = [r for r in result["results"] if r["variant"] == "effseg"]
    worst = min(r["speedup_vs_composed_ref"] for r in fused)
    return {"min_speedup_vs_composed_ref": worst, "speedup_met": worst >= 20,
            "max_rel_err": max(r["max_rel_err_vs_composed_ref"] for r in fused)}


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true", help="one stage (64 channels at 64x64)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    stages = QUICK_STAGES if args.quick else CMUNET_STAGES_512
    result = bench_ss2d(args.device, stages, repeats=args.repeats)
    result["targets"] = targets(result)
    out = Path(args.out) if args.out else RESULTS / f"ss2d-{args.device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["targets"], indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
