"""Training-step cost of the boundary losses: a small segmentation net (batch 4, 256x256,
6 classes) trained with cross-entropy alone vs CE + DistanceLoss / BoundaryLoss /
HausdorffDTLoss, side by side.

Writes bench/results/losses-<device>.json. Run:  python bench/bench_losses.py [--device cuda] [--quick]
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

RESULTS = Path(__file__).resolve().parent / "results"


def targets(result: dict) -> dict:
    """The issue's CPU target: CE + DistanceLoss costs at most 30% more per step than CE."""
    rows = {r["variant"]: r for r in result["results"]}
    over = rows["ce+distance"]["overhead_vs_ce"]
    return {"ce+distance_overhead": over, "overhead_met": over <= 0.30,
            "ce+boundary_overhead": rows["ce+boundary"]["overhead_vs_ce"],
            "ce+hausdorff_overhead": rows["ce+hausdorff"]["overhead_vs_ce"]}


def main():
    from effseg.bench.losses import DEFAULT_SHAPE, QUICK_SHAPE, bench_losses

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true", help="batch 2 at 64x64")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    shape = QUICK_SHAPE if args.quick else DEFAULT_SHAPE
    result = bench_losses(args.device, **shape, repeats=args.repeats)
    result["targets"] = targets(result)
    out = Path(args.out) if args.out else RESULTS / f"losses-{args.device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["targets"], indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
