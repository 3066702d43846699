"""Training-step cost of the boundary losses: a small segmentation net (batch 4, 256x256,
6 classes) trained with cross-entropy alone vs CE + DistanceLoss / BoundaryLoss /
HausdorffDTLoss, side by side.

Writes bench/results/losses-<device>.json. Run:
    python bench/bench_losses.py [--device cuda] [--quick]
"""
import sys
from pathlib import Path

from effseg.bench.script import run_script

if __name__ == "__main__":
    sys.exit(run_script("losses", __doc__, Path(__file__).resolve().parent / "results"))
