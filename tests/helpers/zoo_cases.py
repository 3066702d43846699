"""Shared pieces of the model-zoo tests: checkpoint key manifests and attention gates."""
from __future__ import annotations

import json
from pathlib import Path

import torch

DATA = Path(__file__).resolve().parents[1] / "models" / "data"


def manifest(name: str) -> list[tuple[str, tuple[int, ...]]]:
    """[(key, shape)] in order, recorded from the original implementation's state_dict
    (tests/models/data/<name>.keys.json)."""
    return [(k, tuple(s)) for k, s in json.loads((DATA / f"{name}.keys.json").read_text())]


def state_keys(model) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


def open_gates(model, value: float) -> None:
    """Set every LinearAttention gamma (0 at init, which silences the attention)."""
    from effseg.nn import LinearAttention

    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, LinearAttention):
                mod.gamma.fill_(value)
