"""MANet: GeoSeg's checkpoint layout, backbone option, attention blocks, option errors."""
from __future__ import annotations

import pytest
import torch
from zoo_cases import manifest, state_keys

from effseg.models import MANet, count_parameters, create_model
from effseg.models.manet import ChannelAttention, PAMCAMLayer
from effseg.nn import LinearAttention


def test_state_dict_matches_geoseg_manifest():
    # Keys and shapes of GeoSeg's MANet(num_classes=6) (timm resnet50 features_only),
    # in order: equal lists mean GeoSeg checkpoints load strictly.
    m = create_model("manet", 6)
    assert state_keys(m) == manifest("manet")
    assert count_parameters(m) == 35_860_622


def test_resnet18_backbone():
    m = MANet(6, backbone="resnet18").eval()
    sd = m.state_dict()
    assert sd["backbone.layer1.0.conv1.weight"].shape == (64, 64, 3, 3)
    assert "backbone.layer1.0.conv3.weight" not in sd
    assert sd["attention4.PAM.query_conv.weight"].shape == (64, 512, 1, 1)
    assert sd["decoder4.conv3.weight"].shape == (256, 128, 1, 1)
    assert count_parameters(m) == 11_986_590      # GeoSeg's MANet(backbone_name="resnet18")
    with torch.no_grad():
        assert m(torch.randn(1, 3, 64, 32)).shape == (1, 6, 64, 32)


def test_train_mode_returns_logits_only():
    m = MANet(3, backbone="resnet18").train()
    y = m(torch.randn(2, 3, 32, 32))
    assert isinstance(y, torch.Tensor) and y.shape == (2, 3, 32, 32)


def test_attention_blocks_use_effseg_ops_with_the_backend():
    m = MANet(6, backbone="resnet18", backend="ref")
    pams = [mod for mod in m.modules() if isinstance(mod, LinearAttention)]
    assert len(pams) == 4
    assert all(p.kind == "softplus" and p.residual and p.backend == "ref" for p in pams)


def test_channel_attention_formula():
    torch.manual_seed(0)
    cam = ChannelAttention()
    with torch.no_grad():
        cam.gamma.fill_(0.5)
    x = torch.randn(2, 5, 3, 4, dtype=torch.float64)
    f = x.reshape(2, 5, 12)
    # DANet's CAM: softmax over rowmax(E) - E is softmax(-E) (shift invariance).
    att = torch.softmax(-(f @ f.transpose(1, 2)), -1)
    want = x + 0.5 * (att @ f).reshape(x.shape)
    torch.testing.assert_close(cam(x), want)


def test_pam_cam_layer_starts_as_twice_the_input():
    layer = PAMCAMLayer(16)
    x = torch.randn(1, 16, 4, 4)
    torch.testing.assert_close(layer(x), 2 * x)


def test_bad_options():
    with pytest.raises(ValueError, match="backbone"):
        MANet(6, backbone="resnet101")
    with pytest.raises(ValueError, match="backend"):
        MANet(6, backbone="resnet18", backend="cuda")
    with pytest.raises(ValueError, match="num_classes"):
        MANet(0, backbone="resnet18")
    with pytest.raises(ValueError, match="in_channels"):
        MANet(6, in_channels=0, backbone="resnet18")
