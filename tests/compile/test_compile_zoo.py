"""effseg.compile(backend="eager") keeps every zoo model's output (fp32, 64x64)."""
from __future__ import annotations

import pytest
import torch
from zoo_cases import open_gates

import effseg


@pytest.mark.parametrize("name", effseg.list_models())
def test_zoo_parity_eager(name):
    model = effseg.create_model(name, 6).eval()
    open_gates(model, 0.5)  # gamma 0 at init would hide the attention from the check
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    cm = effseg.compile(model, example_input=x, backend="eager")  # check=True: raises on drift
    rep = cm.report()
    assert not rep["fallback"], rep["specialisations"][0].get("error")
    assert rep["parity"]["ok"] and rep["parity"]["rel_err"] <= 1e-4
    with torch.no_grad():
        want, got = model(x), cm(x)
    assert (got - want).abs().max() <= 1e-4 * want.abs().max()
