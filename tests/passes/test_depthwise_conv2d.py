"""depthwise_conv2d pass: on CPU, depthwise convs with kernels >= 5 go to effseg's op;
3x3, non-depthwise grouped convs, other dtypes and non-CPU devices stay, with the
decision recorded."""
from __future__ import annotations

import pytest
import torch
from pass_cases import export_gm, rel_err, targets
from torch import nn

from effseg.passes import depthwise_conv2d

DW = torch.ops.effseg.depthwise_conv2d.default
CONV = torch.ops.aten.conv2d.default
CPU = torch.device("cpu")


@pytest.mark.parametrize("k,stride,padding,dilation,bias", [
    (5, 1, 2, 1, True), (7, 2, 3, 1, False), ((5, 3), 1, (2, 1), 1, True), (5, (1, 2), 4, 2, True)])
def test_large_depthwise_is_replaced(require_backend, k, stride, padding, dilation, bias):
    require_backend("cpp")
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(6, 6, k, stride=stride, padding=padding, dilation=dilation,
                                groups=6, bias=bias), nn.ReLU())
    x = torch.randn(2, 6, 11, 13)
    gm = export_gm(m, x)
    rec = depthwise_conv2d.run(gm, CPU)
    gm.recompile()
    assert rec["changed"] == 1 and rec["kept"] == 0
    assert DW in targets(gm) and CONV not in targets(gm)
    with torch.no_grad():
        assert rel_err(gm(x), m(x)) < 1e-5


def test_small_kernel_grouped_and_gpu_are_kept():
    m = nn.Sequential(nn.Conv2d(6, 6, 3, padding=1, groups=6),   # depthwise 3x3: kept
                      nn.Conv2d(6, 6, 5, padding=2, groups=3),   # grouped, not depthwise
                      nn.Conv2d(6, 12, 5, padding=2, groups=6))  # channel multiplier 2
    x = torch.randn(1, 6, 8, 8)
    gm = export_gm(m, x)
    rec = depthwise_conv2d.run(gm, CPU)
    assert rec["changed"] == 0 and rec["kept"] == 1
    assert rec["kept_because"] == {"kernel 3x3": 1}
    assert DW not in targets(gm)

    m5 = nn.Conv2d(4, 4, 5, padding=2, groups=4)
    gm5 = export_gm(m5, torch.randn(1, 4, 8, 8))
    rec = depthwise_conv2d.run(gm5, torch.device("cuda"))
    assert rec["changed"] == 0 and rec["kept"] == 1
    assert "cuda" in next(iter(rec["kept_because"]))


def test_half_precision_is_kept():
    m = nn.Conv2d(4, 4, 5, padding=2, groups=4).to(torch.bfloat16)
    gm = export_gm(m, torch.randn(1, 4, 8, 8, dtype=torch.bfloat16))
    rec = depthwise_conv2d.run(gm, CPU)
    assert rec["changed"] == 0 and rec["kept_because"] == {"dtype torch.bfloat16": 1}
