"""A CM-UNet bundle on the CPU: effseg eager vs the runtime's native-scan form (what
`effseg run` / `effseg predict` use) vs the plain standard-op model.onnx in ONNX Runtime,
side by side in one process (issue 19: the runtime within 1.5x of eager).

Writes bench/results/mamba-runtime-cpu.json (-quick.json with --quick). Run alone:
    python bench/bench_mamba_runtime.py [--size 512] [--model cmunet] [--repeats 5] [--quick]
"""
import sys
from pathlib import Path

from effseg.bench.script import run_script

if __name__ == "__main__":
    sys.exit(run_script("mamba_runtime", __doc__, Path(__file__).resolve().parent / "results"))
