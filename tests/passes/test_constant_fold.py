"""constant_fold pass: parameter-only subgraphs become precomputed parameters."""
from __future__ import annotations

import torch
from pass_cases import export_gm, targets
from torch import nn

from effseg.passes import constant_fold

CPU = torch.device("cpu")


class _BiasTable(nn.Module):
    """A relative-position-style table gathered and permuted on every call."""

    def __init__(self):
        super().__init__()
        self.table = nn.Parameter(torch.randn(9, 2))
        self.register_buffer("index", torch.randint(0, 9, (12,)))
        self.a_log = nn.Parameter(torch.randn(3))

    def forward(self, x):
        bias = self.table[self.index].view(3, 4, 2).permute(2, 0, 1)
        return x + bias - torch.exp(self.a_log).view(1, 3, 1)


def test_parameter_only_subgraph_is_folded():
    m = _BiasTable().eval()
    x = torch.randn(5, 2, 3, 4)
    gm = export_gm(m, x)
    rec = constant_fold.run(gm, CPU)
    gm.recompile()
    assert rec == {"pass": "constant_fold", "changed": 2}
    ts = targets(gm)
    assert torch.ops.aten.index.Tensor not in ts and torch.ops.aten.exp.default not in ts
    with torch.no_grad():
        torch.testing.assert_close(gm(x), m(x), rtol=0, atol=0)


def test_input_dependent_and_random_nodes_stay():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(3))

        def forward(self, x):
            return x * self.w.view(1, 3) + torch.rand_like(self.w)

    gm = export_gm(M(), torch.randn(2, 3))
    before = targets(gm)
    assert constant_fold.run(gm, CPU)["changed"] == 0
    assert targets(gm) == before
