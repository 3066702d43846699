"""Cross selective scan (SS2D's four-direction scan) inside the SS2D block at CM-UNet's
decoder stages: effseg's fused block vs the block composed on the reference scan and on
the C++ scan, side by side.

Writes bench/results/cross_selective_scan-<device>.json. Run:
    python bench/bench_cross_selective_scan.py [--device cuda] [--quick]
"""
import sys
from pathlib import Path

from effseg.bench.script import run_script

if __name__ == "__main__":
    sys.exit(run_script("cross_selective_scan", __doc__, Path(__file__).resolve().parent / "results"))
