"""Training checkpoints: GeoSeg's Lightning form plus what effseg needs to rebuild,
deploy and resume.

    {"state_dict": {"net.<key>": tensor, ...},          GeoSeg / Lightning: net. prefix
     "effseg": {architecture, num_classes, in_channels,  plain JSON (see run_meta)
                classes, palette, normalize, tile_size, format, pixel_dtype, ...},
     "resume": {optimizer, scaler, rng, schedule, ...},  tensors and plain containers
     "epoch": int, "global_step": int}

Only tensors and plain containers, so torch.load(weights_only=True) reads it and
effseg.models.load_checkpoint needs no trusted=True.
"""
from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import torch

from ..models.checkpoint import META_KEY

NET_PREFIX = "net."


def _plain(obj, where: str = "effseg"):
    """Checks that obj survives JSON (and so weights_only loading) unchanged in kind."""
    try:
        json.dumps(obj, allow_nan=True)
    except TypeError as exc:
        raise TypeError(f"checkpoint metadata {where!r} must be plain JSON (str, numbers, lists, dicts): {exc}") \
            from None
    return obj


def rng_state() -> dict:
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
             "python_pos": random.getstate()[2] if random.getstate()[2] is not None else -1,
             "numpy": torch.from_numpy(np_state[1].astype(np.int64)), "numpy_pos": int(np_state[2])}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    pos = state["python_pos"]
    random.setstate((3, tuple(state["python"]), None if pos == -1 else pos))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path, model: torch.nn.Module, meta: dict, resume: dict | None = None, **extra) -> Path:
    """Write atomically (a crash mid-write leaves the previous file)."""
    path = Path(path)
    sd = {NET_PREFIX + k: v.detach().cpu() for k, v in model.state_dict().items()}
    obj = {"state_dict": sd, META_KEY: _plain(meta), **extra}
    if resume is not None:
        obj["resume"] = resume
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path) -> dict:
    """A training checkpoint, read with weights_only=True; ValueError when it is not one."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--resume: no checkpoint file at {path!r}")
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(obj, dict) or META_KEY not in obj or "state_dict" not in obj:
        raise ValueError(f"{path!r} is not a checkpoint written by `effseg train` (no {META_KEY!r} metadata)")
    return obj


def net_state(obj: dict) -> dict:
    return {k[len(NET_PREFIX):]: v for k, v in obj["state_dict"].items() if k.startswith(NET_PREFIX)}
