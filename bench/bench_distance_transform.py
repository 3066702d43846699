"""Exact Euclidean distance transform: effseg C++ vs scipy vs OpenCV (CPU), or effseg
Triton vs cupyx (CUDA), on 8 blobby 1024x1024 masks, side by side.

Writes bench/results/distance_transform-<device>.json. Run:
    python bench/bench_distance_transform.py [--device cuda] [--quick]
"""
import sys
from pathlib import Path

from effseg.bench.script import run_script

if __name__ == "__main__":
    sys.exit(run_script("distance_transform", __doc__, Path(__file__).resolve().parent / "results"))
