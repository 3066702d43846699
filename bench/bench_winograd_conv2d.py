"""Winograd F(4x4, 3x3) conv: effseg (C++ + torch.bmm on CPU, Triton on CUDA) vs F.conv2d
(oneDNN) vs the op's reference, side by side, at the 3 x 3 layers of a ResNet-18
UNetFormer at 512 x 512 (batch 1).

Writes bench/results/winograd_conv2d-<device>[-t<threads>].json. Run:
    python bench/bench_winograd_conv2d.py [--device cuda] [--threads N] [--quick]
"""
import sys
from pathlib import Path

from effseg.bench.script import run_script

if __name__ == "__main__":
    sys.exit(run_script("winograd_conv2d", __doc__, Path(__file__).resolve().parent / "results"))
