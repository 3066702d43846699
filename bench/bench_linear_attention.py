"""Linear attention: effseg's C++ kernel vs GeoSeg's einsum code vs the reference (CPU),
or the Triton kernel (GPU), side by side, both kinds, B = 1, Ck in {C/8, C},
Cv = C in {64, 128, 256}, N in {32^2, 64^2, 128^2}.

Writes bench/results/linear_attention-<device>.json. Run:
    python bench/bench_linear_attention.py [--device cuda] [--quick] [--grad]
"""
import sys
from pathlib import Path

from effseg.bench.script import run_script

if __name__ == "__main__":
    sys.exit(run_script("linear_attention", __doc__, Path(__file__).resolve().parent / "results"))
