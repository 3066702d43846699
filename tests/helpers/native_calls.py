"""Counting the calls a model makes into the C++ module (effseg._C)."""
from __future__ import annotations

from collections import Counter

import effseg._native as native


class _CountingModule:
    """Stands in for effseg._C: forwards everything, counting calls per entry point."""

    def __init__(self, real, calls: Counter):
        self._real, self._calls = real, calls

    def __getattr__(self, name):
        attr = getattr(self._real, name)
        if not callable(attr):
            return attr

        def counted(*args, **kwargs):
            self._calls[name] += 1
            return attr(*args, **kwargs)
        return counted


def count_native_calls(monkeypatch) -> Counter:
    """Route effseg._native.require() through a counter for the rest of the test."""
    calls: Counter = Counter()
    monkeypatch.setattr(native, "_C", _CountingModule(native.require(), calls))
    return calls


def open_scan_branches(model, seed: int = 0):
    """Make the selective scans matter in a model's output: in/x/out projections of every
    Mamba / SS2D re-drawn at unit gain, dt biases at 0 (dt ~ softplus(0)) and the D skip
    at 0.1 (seeded, so two equal models stay equal). At the zoo's init (projections
    N(0, 0.02), small dt, D = 1) the recurrence's share of the logits is ~1e-3 or less,
    which would let a wrong scan pass a comparison."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            parts = name.split(".")
            if p.dim() == 2 and parts[-2] in ("in_proj", "x_proj", "out_proj"):
                p.copy_(torch.randn(p.shape, generator=gen) * p.shape[1] ** -0.5)
            elif parts[-1] in ("dt_projs_bias",) or parts[-2:] == ["dt_proj", "bias"]:
                p.zero_()
            elif parts[-1] in ("D", "Ds"):
                p.fill_(0.1)
    return model


def record_scan_outputs(model) -> list:
    """Outputs of every Mamba / SS2D in the model, appended in call order on each forward."""
    from effseg.nn import SS2D, Mamba

    outs: list = []
    for mod in model.modules():
        if isinstance(mod, (Mamba, SS2D)):
            mod.register_forward_hook(lambda _m, _i, out: outs.append(out.detach()))
    return outs
