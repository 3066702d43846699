"""Training on both real samples (effseg.data.fetch_sample, spatial split) under a fixed
CPU budget per run, over seeds: the student alone, CE + DistanceLoss, and KD (logit, cwd,
boundary) from a trained teacher; a per-pixel random forest as the floor; effseg's
training loop's images/s against a plain PyTorch loop of the same model and loss.

Prints the plan (runs x budget, predicted minutes) first and a Markdown summary last.
Writes bench/results/train-<device>.json (-quick.json with --quick). Run:
    python bench/bench_train.py [--budget 45] [--seeds 3] [--datasets buildings,landcover]
        [--student unetformer-dw] [--teacher unetformer] [--teacher-budget 90] [--markdown OUT] [--quick]
"""
import sys
from pathlib import Path

from effseg.bench.script import run_script

if __name__ == "__main__":
    sys.exit(run_script("train", __doc__, Path(__file__).resolve().parent / "results"))
