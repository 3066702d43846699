"""BiSeNet V2: branch shapes and strides, booster heads in training, options, errors."""
from __future__ import annotations

import pytest
import torch

from effseg.models import BiSeNetV2, count_parameters
from effseg.models.bisenetv2 import GatherExpansion


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return BiSeNetV2(6)


def test_branch_widths_and_strides(model):
    model.eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        d = model.detail(x)
        feats = model.semantic(x)
    assert d.shape == (1, 128, 8, 12)                                   # stride 8
    assert [tuple(f.shape[1:]) for f in feats] == [(16, 16, 24), (32, 8, 12), (64, 4, 6),
                                                   (128, 2, 3), (128, 2, 3)]


def test_parameter_count(model):
    # The inference net (no booster heads) is 3.35 M at 6 classes, 3.36 M at Cityscapes'
    # 19; the four booster heads add 0.28 M for training.
    assert count_parameters(model) == 3_625_902
    assert count_parameters(BiSeNetV2(6, aux=False)) == 3_345_302


def test_train_mode_returns_booster_outputs(model):
    model.train()
    out = model(torch.randn(2, 3, 64, 64))
    assert isinstance(out, tuple) and len(out) == 5
    assert all(o.shape == (2, 6, 64, 64) for o in out)
    sum(o.square().mean() for o in out).backward()
    # With the booster heads every parameter is on a loss path.
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad(set_to_none=True)
    model.eval()
    with torch.no_grad():
        y = model(torch.randn(1, 3, 50, 70))
    assert isinstance(y, torch.Tensor) and y.shape == (1, 6, 50, 70)


def test_without_booster_heads():
    m = BiSeNetV2(2, aux=False).train()
    assert not any(n.startswith("aux") for n, _ in m.named_parameters())
    y = m(torch.randn(2, 3, 32, 32))
    assert isinstance(y, torch.Tensor) and y.shape == (2, 2, 32, 32)


def test_options():
    m = BiSeNetV2(3, in_channels=4, head_channels=256, aux_channels=64, expansion=4)
    sd = m.state_dict()
    assert sd["detail.s1.0.0.weight"].shape == (64, 4, 3, 3)
    assert sd["semantic.stem.conv.0.weight"].shape == (16, 4, 3, 3)
    assert sd["head.conv.0.weight"].shape == (256, 128, 3, 3)
    assert sd["aux3.conv.0.weight"].shape == (64, 32, 3, 3)
    assert sd["semantic.s3.1.expand.0.weight"].shape == (32 * 4, 1, 3, 3)
    with torch.no_grad():
        assert m.eval()(torch.randn(1, 4, 32, 32)).shape == (1, 3, 32, 32)


def test_gather_expansion_layer():
    x = torch.randn(2, 8, 8, 8)
    assert GatherExpansion(8, 8, 1).eval()(x).shape == (2, 8, 8, 8)
    assert GatherExpansion(8, 16, 2).eval()(x).shape == (2, 16, 4, 4)
    assert (GatherExpansion(8, 8, 1)(x) >= 0).all()          # ReLU after the residual add
    with pytest.raises(ValueError, match="out_channels"):
        GatherExpansion(8, 16, 1)


def test_bad_options():
    with pytest.raises(ValueError, match="head_channels"):
        BiSeNetV2(6, head_channels=0)
    with pytest.raises(ValueError, match="expansion"):
        BiSeNetV2(6, expansion=1.5)
    with pytest.raises(TypeError, match="aux"):
        BiSeNetV2(6, aux="yes")
    with pytest.raises(ValueError, match="backend"):
        BiSeNetV2(6, backend="tensorrt")
