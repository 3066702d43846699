"""remove_dropout pass: eval dropouts vanish, outputs unchanged."""
from __future__ import annotations

import torch
from pass_cases import export_gm, targets
from torch import nn

from effseg.passes import remove_dropout

aten = torch.ops.aten


def test_eval_dropouts_are_removed():
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Dropout(0.3), nn.Dropout2d(0.2), nn.Identity(),
                      nn.ReLU(), nn.Dropout(0.0))
    x = torch.randn(2, 3, 7, 5)
    gm = export_gm(m, x)
    rec = remove_dropout.run(gm, torch.device("cpu"))
    gm.recompile()
    assert rec["changed"] == 3
    assert not any("dropout" in str(t) for t in targets(gm))
    with torch.no_grad():
        torch.testing.assert_close(gm(x), m(x), rtol=0, atol=0)


def test_training_dropout_stays():
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Dropout(0.3)).train()
    gm = torch.export.export(m, (torch.randn(1, 3, 5, 5),)).module()
    assert remove_dropout.run(gm, torch.device("cpu"))["changed"] == 0
    assert any("dropout" in str(t) for t in targets(gm))
