"""DDP under torchrun (2 processes, gloo on CPU) against one process on the same global batch.

The net has no BatchNorm (each process would normalise with its own half-batch statistics
unless --sync-bn) and no dropout; every pixel of the data is labelled, so the mean of the
two processes' per-pixel means is the global mean. Tolerance: step losses 1e-5 relative,
weights 1e-5 absolute (float32 reductions summed in another order).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from train_data import TINY_NET, make_dataset

HELPERS = str(Path(__file__).resolve().parent.parent / "helpers")


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=HELPERS + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


def _args(data, out):
    return ["train", "--model", TINY_NET, "--data", str(data), "--out", str(out), "--epochs", "2", "--batch", "4",
            "--lr", "0.01", "--crop", "24", "--no-progress", "--device", "cpu"]


def test_ddp_two_processes_match_one(tmp_path):
    data = make_dataset(tmp_path / "data", n_train=8, n_val=3)
    for i in range(8):  # every pixel labelled (see the module docstring)
        p = data / "train" / "masks" / f"t{i}.png"
        m = np.array(Image.open(p))
        m[m == 255] = 0
        Image.fromarray(m).save(p)
    one = subprocess.run([sys.executable, "-m", "effseg.cli", *_args(data, tmp_path / "one")], env=_env(),
                         capture_output=True, text=True, timeout=120)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "effseg.cli", *_args(data, tmp_path / "two")], env=_env(), capture_output=True,
                         text=True, timeout=120)
    assert two.returncode == 0, two.stderr[-3000:]
    m1 = json.loads((tmp_path / "one" / "metrics.json").read_text())
    m2 = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert m1["world_size"] == 1 and m2["world_size"] == 2
    l1 = [v for e in m1["epochs"] for v in e["step_losses"]]
    l2 = [v for e in m2["epochs"] for v in e["step_losses"]]
    assert len(l1) == len(l2) == 4
    assert l2 == pytest.approx(l1, rel=1e-5)
    a = torch.load(tmp_path / "one" / "last.ckpt", weights_only=True)
    b = torch.load(tmp_path / "two" / "last.ckpt", weights_only=True)
    for k, v in a["state_dict"].items():
        assert torch.allclose(v, b["state_dict"][k], atol=1e-5, rtol=0), k
    # validation was split between the processes and summed
    assert m2["epochs"][-1]["miou"] == pytest.approx(m1["epochs"][-1]["miou"], abs=1e-6)
    assert len(b["resume"]["rng"]) == 2
