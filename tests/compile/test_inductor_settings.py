"""The Inductor settings effseg passes: freezing always, CUDA graphs on CUDA, user overrides."""
from __future__ import annotations

import pytest
import torch

from effseg.compile.backends import inductor


def _record(monkeypatch):
    seen = {}

    def fake_compile(gm, **kw):
        seen.update(kw)
        return gm

    monkeypatch.setattr(torch, "compile", fake_compile)
    return seen


def test_cpu_defaults_freeze_weights(monkeypatch):
    seen = _record(monkeypatch)
    inductor.build(torch.nn.Identity(), None, device=torch.device("cpu"), options={})
    assert seen["options"] == {"freezing": True}
    assert seen["dynamic"] is False and "mode" not in seen


def test_cuda_defaults_add_cuda_graphs(monkeypatch):
    seen = _record(monkeypatch)
    inductor.build(torch.nn.Identity(), None, device=torch.device("cuda"), options={})
    assert seen["options"] == {"freezing": True, "triton.cudagraphs": True}


def test_user_settings_override_defaults(monkeypatch):
    seen = _record(monkeypatch)
    inductor.build(torch.nn.Identity(), None, device=torch.device("cpu"),
                   options={"options": {"freezing": False, "cpp_wrapper": True}})
    assert seen["options"] == {"freezing": False, "cpp_wrapper": True}


def test_user_mode_becomes_settings_without_touching_global_config(monkeypatch):
    seen = _record(monkeypatch)
    import torch._inductor.config as cfg

    before = cfg.freezing
    inductor.build(torch.nn.Identity(), None, device=torch.device("cpu"),
                   options={"mode": "max-autotune-no-cudagraphs", "options": {"coordinate_descent_tuning": False}})
    assert "mode" not in seen
    assert seen["options"] == {"max_autotune": True, "coordinate_descent_tuning": False, "freezing": True}
    assert cfg.freezing == before


def test_unknown_mode_names_the_option():
    with pytest.raises(ValueError, match="option 'mode'"):
        inductor.build(torch.nn.Identity(), None, device=torch.device("cpu"), options={"mode": "fastest"})
