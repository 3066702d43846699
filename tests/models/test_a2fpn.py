"""A2-FPN: GeoSeg's checkpoint layout (encoder tensors under two names), options, errors."""
from __future__ import annotations

import pytest
import torch
from zoo_cases import manifest, state_keys

from effseg.models import A2FPN, count_parameters, create_model, load_checkpoint
from effseg.nn import LinearAttention


@pytest.fixture(scope="module")
def model():
    return create_model("a2fpn", 6)


def test_state_dict_matches_geoseg_manifest(model):
    # Keys and shapes of GeoSeg's A2FPN(class_num=6) (torchvision resnet18 as base_model,
    # its children again as layer_down0..4), in order.
    assert state_keys(model) == manifest("a2fpn")
    assert count_parameters(model) == 12_159_983


def test_encoder_tensors_are_shared_not_copied(model):
    sd = model.state_dict()
    pairs = [("base_model.conv1.weight", "layer_down0.0.weight"),
             ("base_model.bn1.running_var", "layer_down0.1.running_var"),
             ("base_model.layer1.1.conv2.weight", "layer_down1.1.1.conv2.weight"),
             ("base_model.layer2.0.downsample.0.weight", "layer_down2.0.downsample.0.weight"),
             ("base_model.layer4.1.bn2.bias", "layer_down4.1.bn2.bias")]
    for a, b in pairs:
        assert sd[a].data_ptr() == sd[b].data_ptr(), (a, b)
    assert sd["base_model.fc.weight"].shape == (1000, 512)


def test_loads_a_checkpoint_with_both_name_sets(model):
    model.eval()
    src = create_model("a2fpn", 6, seed=3).eval()
    with torch.no_grad():
        src.attention.conv_atten.gamma.fill_(0.5)      # make the attention contribute
    res = load_checkpoint(model, {"state_dict": {f"net.{k}": v
                                                 for k, v in src.state_dict().items()}})
    assert not res.missing and not res.unexpected and not res.mismatched
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), src(x), rtol=0, atol=0)


def test_attention_is_taylor_linear_attention_with_backend():
    m = A2FPN(6, backend="ref")
    att = [mod for mod in m.modules() if isinstance(mod, LinearAttention)]
    assert len(att) == 1 and att[0].kind == "taylor" and not att[0].residual
    assert att[0].backend == "ref" and att[0].in_places == 256


def test_options_and_train_mode():
    m = A2FPN(4, in_channels=5, pyramid_channels=32, segmentation_channels=32, dropout=0.0)
    sd = m.state_dict()
    assert sd["base_model.conv1.weight"].shape == (64, 5, 7, 7)
    assert sd["conv1.weight"].shape == (32, 512, 1, 1)
    assert sd["s5.block.2.block.0.weight"].shape == (32, 32, 3, 3)
    assert sd["attention.convblk.conv.weight"].shape == (128, 128, 1, 1)
    assert m.dropout.p == 0.0
    y = m.train()(torch.randn(2, 5, 64, 32))
    assert isinstance(y, torch.Tensor) and y.shape == (2, 4, 64, 32)


def test_bad_options():
    with pytest.raises(ValueError, match="segmentation_channels"):
        A2FPN(6, segmentation_channels=48)
    with pytest.raises(ValueError, match="pyramid_channels"):
        A2FPN(6, pyramid_channels=0)
    with pytest.raises(ValueError, match="dropout"):
        A2FPN(6, dropout=1.0)
    with pytest.raises(ValueError, match="backend"):
        A2FPN(6, backend="gpu")
