"""winograd_conv2d pass: on CPU, dense 3x3 stride-1 float32 convs with enough channels go to
effseg's Winograd op (a ReLU right after is fused); everything else stays, with the
decision recorded; graphs for ONNX Runtime / TensorRT are left alone."""
from __future__ import annotations

import pytest
import torch
from pass_cases import export_gm, rel_err, targets
from torch import nn

from effseg.passes import winograd_conv2d

WINO = torch.ops.effseg.winograd_conv2d.default
CONV = torch.ops.aten.conv2d.default
RELU = (torch.ops.aten.relu.default, torch.ops.aten.relu_.default)
CPU = torch.device("cpu")
TOL = 1e-4  # Winograd F(4,3) in fp32 vs direct conv, relative to the output scale


@pytest.mark.parametrize("padding,bias,relu,hw", [
    (1, True, True, (19, 23)), (0, False, False, (20, 19)), ((2, 1), True, False, (16, 21))])
def test_dense_3x3_is_replaced(require_backend, padding, bias, relu, hw):
    require_backend("cpp")
    torch.manual_seed(0)
    layers = [nn.Conv2d(16, 24, 3, padding=padding, bias=bias)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    m = nn.Sequential(*layers, nn.Conv2d(24, 5, 1))
    x = torch.randn(2, 16, *hw)
    gm = export_gm(m, x)
    rec = winograd_conv2d.run(gm, CPU)
    gm.recompile()
    assert rec["changed"] == 1 and rec["relu_fused"] == int(relu) and rec["kept"] == 0
    t = targets(gm)
    assert WINO in t and t.count(CONV) == 1  # the 1x1 head stays
    assert not any(r in t for r in RELU)
    with torch.no_grad():
        assert rel_err(gm(x), m(x)) < TOL


def test_relu_with_other_users_is_not_fused(require_backend):
    require_backend("cpp")

    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(16, 16, 3, padding=1)

        def forward(self, x):
            y = self.conv(x)
            return torch.relu(y) + y  # the conv output is read twice

    torch.manual_seed(0)
    m, x = Two(), torch.randn(1, 16, 16, 16)
    gm = export_gm(m, x)
    rec = winograd_conv2d.run(gm, CPU)
    gm.recompile()
    assert rec["changed"] == 1 and rec["relu_fused"] == 0
    with torch.no_grad():
        assert rel_err(gm(x), m(x)) < TOL


def test_near_misses_are_kept():
    m = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, stride=2),      # stride 2
                      nn.Conv2d(16, 16, 3, padding=2, dilation=2),    # dilated
                      nn.Conv2d(16, 16, 3, padding=1, groups=2),      # grouped: not counted
                      nn.Conv2d(16, 8, 3, padding=1),                 # too few channels
                      nn.Conv2d(8, 16, 5, padding=2))                 # 5x5: not counted
    x = torch.randn(1, 16, 32, 32)
    gm = export_gm(m, x)
    rec = winograd_conv2d.run(gm, CPU)
    assert rec["changed"] == 0 and rec["kept"] == 3
    assert rec["kept_because"] == {"stride / dilation / padding": 2, "too small to gain": 1}
    assert WINO not in targets(gm)


def test_small_images_dtypes_devices_and_backends_are_kept():
    m = nn.Conv2d(16, 16, 3, padding=1)
    gm = export_gm(m, torch.randn(1, 16, 8, 8))
    assert winograd_conv2d.run(gm, CPU)["kept_because"] == {"too small to gain": 1}
    gm = export_gm(m.double(), torch.randn(1, 16, 32, 32, dtype=torch.float64))
    assert winograd_conv2d.run(gm, CPU)["kept_because"] == {"dtype torch.float64": 1}
    m = nn.Conv2d(16, 16, 3, padding=1)
    x = torch.randn(1, 16, 32, 32)
    rec = winograd_conv2d.run(export_gm(m, x), torch.device("cuda"))
    assert rec["changed"] == 0 and "cuda" in next(iter(rec["kept_because"]))
    rec = winograd_conv2d.run(export_gm(m, x), CPU, backend="onnxruntime")
    assert rec["changed"] == 0 and "onnxruntime" in next(iter(rec["kept_because"]))


def test_openvino_takes_only_wide_convs():
    """The ONNX Winograd graph (openvino backend) needs 128 channels; ONNX Runtime none."""
    for c, changed in ((64, 0), (128, 1)):
        m = nn.Conv2d(c, c, 3, padding=1)
        rec = winograd_conv2d.run(export_gm(m, torch.randn(1, c, 16, 16)), CPU, backend="openvino")
        assert rec["changed"] == changed and "channels >= 128" in rec["rule"]
        if not changed:
            assert rec["kept_because"] == {"too small to gain": 1}
    rec = winograd_conv2d.run(export_gm(nn.Conv2d(256, 256, 3, padding=1), torch.randn(1, 256, 16, 16)),
                              CPU, backend="onnxruntime")
    assert rec["changed"] == 0 and "onnxruntime" in next(iter(rec["kept_because"]))
