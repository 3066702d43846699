"""fold_batchnorm pass: conv / linear -> inference BN becomes one conv with folded weights;
anything else (shared conv output, training BN, linear on 3-D input) stays."""
from __future__ import annotations

import pytest
import torch
from geoseg_blocks import randomise_batchnorms
from pass_cases import export_gm, rel_err, targets
from torch import nn

from effseg.passes import fold_batchnorm

aten = torch.ops.aten
CPU = torch.device("cpu")
TOL = 1e-5  # relative to the output's max |value|: float32 refolding error


def _bn_count(gm):
    return sum(t in (aten.batch_norm.default, aten._native_batch_norm_legit_no_training.default)
               for t in targets(gm))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("groups", [1, 5])
def test_conv_bn_is_folded(bias, groups):
    torch.manual_seed(0)
    m = randomise_batchnorms(nn.Sequential(
        nn.Conv2d(5, 10, 3, padding=1, stride=2, bias=bias, groups=groups), nn.BatchNorm2d(10),
        nn.ReLU(), nn.Conv2d(10, 7, 1), nn.BatchNorm2d(7, affine=False)))
    x = torch.randn(2, 5, 9, 11)
    gm = export_gm(m, x)
    rec = fold_batchnorm.run(gm, CPU)
    gm.recompile()
    assert rec == {"pass": "fold_batchnorm", "changed": 2}
    assert _bn_count(gm) == 0
    with torch.no_grad():
        assert rel_err(gm(x), m(x)) < TOL


def test_linear_bn1d_on_2d_is_folded_and_3d_is_not():
    torch.manual_seed(1)
    m2 = randomise_batchnorms(nn.Sequential(nn.Linear(6, 4), nn.BatchNorm1d(4)))
    x2 = torch.randn(3, 6)
    gm = export_gm(m2, x2)
    assert fold_batchnorm.run(gm, CPU)["changed"] == 1
    gm.recompile()
    with torch.no_grad():
        assert rel_err(gm(x2), m2(x2)) < TOL
    # On (B, L, C) BatchNorm1d normalises L, not the linear's features: a near miss.
    m3 = randomise_batchnorms(nn.Sequential(nn.Linear(6, 4), nn.BatchNorm1d(5)))
    gm3 = export_gm(m3, torch.randn(2, 5, 6))
    assert fold_batchnorm.run(gm3, CPU)["changed"] == 0
    assert _bn_count(gm3) == 1


class _SharedConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y  # y is read twice: folding would change the second read


class _BnOnInput(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x):
        return self.bn(torch.relu(x))


@pytest.mark.parametrize("cls", [_SharedConv, _BnOnInput])
def test_near_misses_are_left_alone(cls):
    m = randomise_batchnorms(cls())
    x = torch.randn(1, 3, 6, 7)
    gm = export_gm(m, x)
    before = targets(gm)
    assert fold_batchnorm.run(gm, CPU)["changed"] == 0
    assert targets(gm) == before


def test_training_mode_batch_norm_is_left_alone():
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    gm = torch.export.export(m, (torch.randn(2, 3, 6, 6),)).module()
    assert fold_batchnorm.run(gm, CPU)["changed"] == 0


def test_decomposed_graph_and_same_padding_are_folded():
    torch.manual_seed(2)
    m = randomise_batchnorms(nn.Sequential(nn.Conv2d(3, 6, 3, padding="same"), nn.BatchNorm2d(6),
                                           nn.Conv2d(6, 4, 3), nn.BatchNorm2d(4)))
    x = torch.randn(2, 3, 8, 7)
    gm = export_gm(m, x)
    assert fold_batchnorm.run(gm, CPU)["changed"] == 2
    gm.recompile()
    # run_decompositions writes aten.convolution and _native_batch_norm_legit_no_training.
    gd = torch.export.export(m, (x,)).run_decompositions().module()
    assert aten._native_batch_norm_legit_no_training.default in targets(gd)
    assert fold_batchnorm.run(gd, CPU)["changed"] == 2
    gd.recompile()
    assert _bn_count(gd) == 0
    with torch.no_grad():
        assert rel_err(gm(x), m(x)) < TOL
        assert rel_err(gd(x), m(x)) < TOL


def test_transposed_conv_is_left_alone():
    m = randomise_batchnorms(nn.Sequential(nn.ConvTranspose2d(3, 4, 2, stride=2), nn.BatchNorm2d(4)))
    gd = torch.export.export(m.eval(), (torch.randn(1, 3, 4, 4),)).run_decompositions().module()
    assert fold_batchnorm.run(gd, CPU)["changed"] == 0
    assert _bn_count(gd) == 1
