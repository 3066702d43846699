"""BANet: GeoSeg's checkpoint layout (both dependency paths), outputs, options, errors."""
from __future__ import annotations

import pytest
import torch
from zoo_cases import (
    check_backends_agree_with_gates_open,
    manifest,
    state_keys,
)

from effseg.models import BANet, create_model
from effseg.nn import LinearAttention


@pytest.mark.parametrize("backbone,fixture", [("rest_lite", "banet"),
                                              ("resnet18", "banet_resnet18")])
def test_state_dict_matches_geoseg(backbone, fixture):
    # Generated from GeoSeg's BANet.py (num_classes=6); "resnet18" is its DependencyPathRes
    # swapped in as `cp` (torchvision ResNet-18 children).
    assert state_keys(BANet(6, backbone=backbone)) == manifest(fixture)


def test_attention_blocks_are_residual_taylor():
    m = BANet(6, backend="ref")
    att = [mod for mod in m.modules() if isinstance(mod, LinearAttention)]
    assert len(att) == 2
    assert all(a.kind == "taylor" and a.residual and a.backend == "ref" for a in att)


@pytest.mark.parametrize("backbone", ["rest_lite", "resnet18"])
def test_train_and_eval_return_one_tensor(backbone):
    m = create_model("banet", 4, backbone=backbone).train()
    y = m(torch.randn(2, 3, 70, 45))
    assert isinstance(y, torch.Tensor) and y.shape == (2, 4, 70, 45)
    m.eval()
    with torch.no_grad():
        y = m(torch.randn(1, 3, 64, 64))
    assert isinstance(y, torch.Tensor) and y.shape == (1, 4, 64, 64)


def test_dependency_path_is_stride_8():
    m = BANet(6).eval()
    with torch.no_grad():
        assert m.cp(torch.randn(1, 3, 64, 96)).shape == (1, 128, 8, 12)


def test_in_channels_reaches_both_paths():
    sd = BANet(6, in_channels=5).state_dict()
    assert sd["cp.ResT.stem.conv1.weight"].shape == (32, 5, 3, 3)
    assert sd["sp.conv1.conv.weight"].shape == (64, 5, 7, 7)
    sd = BANet(6, in_channels=5, backbone="resnet18").state_dict()
    assert sd["cp.firstconv.weight"].shape == (64, 5, 7, 7)


def test_backends_agree_with_attention_active():
    check_backends_agree_with_gates_open("banet")


def test_drop_path_rate_schedule():
    m = BANet(6, drop_path_rate=0.5)
    blocks = [b for i in range(1, 5) for b in getattr(m.cp.ResT, f"stage{i}")]
    # Linear in depth from 0 (the first block keeps a plain identity) to the rate.
    got = [getattr(b.drop_path, "p", 0.0) for b in blocks]
    torch.testing.assert_close(torch.tensor(got), torch.linspace(0, 0.5, len(blocks)))
    assert all(isinstance(b.drop_path, torch.nn.Identity) for i in range(1, 5)
               for b in getattr(BANet(6).cp.ResT, f"stage{i}"))


@pytest.mark.parametrize("kw,arg", [
    ({"backbone": "resnet50"}, "backbone"),
    ({"drop_path_rate": 1.0}, "drop_path_rate"),
    ({"drop_path_rate": "0.1"}, "drop_path_rate"),
    ({"drop_path_rate": 0.1, "backbone": "resnet18"}, "drop_path_rate"),
    ({"backend": "cuda"}, "backend"),
    ({"in_channels": 0}, "in_channels"),
])
def test_bad_options(kw, arg):
    with pytest.raises(ValueError, match=arg):
        BANet(6, **kw)
