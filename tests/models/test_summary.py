"""GFLOPs counting and the README's generated zoo table."""
from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from effseg.models import count_parameters, create_model, list_models
from effseg.models.summary import TABLE_END, TABLE_START, gflops

README = Path(__file__).resolve().parents[2] / "README.md"


def test_gflops_counts_conv_and_linear():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
                        nn.Linear(8 * 16 * 16, 10))
    want = 2 * 8 * 3 * 9 * 16 * 16 + 2 * 8 * 16 * 16 * 10
    assert abs(gflops(net, size=16) * 1e9 - want) < 1


def test_shared_parameters_count_once():
    lin = nn.Linear(4, 4)
    assert count_parameters(nn.ModuleList([lin, lin])) == 20


def test_readme_table_is_current():
    """The table between the markers is what scripts/zoo_table.py writes: every model
    listed once, with its current parameter count (GFLOPs are not recomputed here)."""
    text = README.read_text()
    assert TABLE_START in text and TABLE_END in text, "run: python scripts/zoo_table.py --write"
    table = text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0]
    rows = dict(re.findall(r"^\| `([^`]+)` \| ([0-9.]+) \|", table, flags=re.MULTILINE))
    assert sorted(rows) == list_models(), "run: python scripts/zoo_table.py --write"
    for name, params in rows.items():
        got = round(count_parameters(create_model(name, 6)) / 1e6, 2)
        assert float(params) == got, f"{name}: README says {params} M, model has {got} M"


def test_gflops_sees_effseg_ops():
    from effseg.nn import LinearAttention

    torch.manual_seed(0)
    m = nn.Sequential(LinearAttention.abcnet(64))
    g = gflops(_Wrap(m, 64), size=32)
    convs = 2 * 32 * 32 * 64 * (8 + 8 + 64)
    attn = 4 * 32 * 32 * 8 * 64
    assert abs(g * 1e9 - (convs + attn)) < 1


class _Wrap(nn.Module):
    def __init__(self, m, c):
        super().__init__()
        self.m, self.c = m, c

    def forward(self, x):
        return self.m(x.new_zeros(x.shape[0], self.c, *x.shape[-2:]))


def test_models_cli(capsys):
    import json

    from effseg.cli import main

    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list_models()
    assert all(r["params_m"] > 0 and r["paper"] for r in rows)
