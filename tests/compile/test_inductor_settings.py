"""The Inductor settings effseg passes: freezing always, CUDA graphs on CUDA, user overrides."""
from __future__ import annotations

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


def test_user_mode_applies_settings_through_config(monkeypatch):
    seen = _record(monkeypatch)
    import torch._inductor.config as cfg

    during = {}

    class Probe(torch.nn.Module):
        def forward(self, x):
            during["freezing"] = cfg.freezing
            return x

    run = inductor.build(Probe(), None, device=torch.device("cpu"), options={"mode": "max-autotune"})
    assert seen["mode"] == "max-autotune" and "options" not in seen
    before = cfg.freezing
    run(torch.zeros(1))
    assert during["freezing"] is True and cfg.freezing == before
