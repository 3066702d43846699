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


def check_backends_agree_with_gates_open(name: str, gamma: float = 0.7) -> None:
    """backend="auto" vs "ref" on a zoo model whose attention gates are open, after
    checking that opening them does change the logits (so the attention is compared)."""
    from effseg.models import create_model

    fast = create_model(name, 6).eval()
    ref = create_model(name, 6, backend="ref").eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        base = fast(x)
        open_gates(fast, gamma)
        open_gates(ref, gamma)
        a, b = fast(x), ref(x)
    assert (a - base).abs().max() > 1e-3      # the attention does change the logits
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * b.abs().max().item())
