"""Selective scan: ref vs C++ vs chunked (CPU) or Triton vs chunked (GPU), side by side.

Writes bench/results/selective_scan-<device>.json. Run:
    python bench/bench_selective_scan.py [--device cuda] [--lengths 1024 4096] [--quick]
"""
import sys
from pathlib import Path

from effseg.bench.script import run_script

if __name__ == "__main__":
    sys.exit(run_script("selective_scan", __doc__, Path(__file__).resolve().parent / "results"))
