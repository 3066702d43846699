"""Depthwise conv: effseg (C++ on CPU, Triton on CUDA) vs F.conv2d (+ activation), side by side.

Writes bench/results/depthwise_conv2d-<device>[-t<threads>].json. Run:
    python bench/bench_depthwise_conv2d.py [--device cuda] [--threads N] [--quick]
"""
import sys
from pathlib import Path

from effseg.bench.script import run_script

if __name__ == "__main__":
    sys.exit(run_script("depthwise_conv2d", __doc__, Path(__file__).resolve().parent / "results"))
