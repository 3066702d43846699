"""ABCNet: GeoSeg's checkpoint layout, training outputs, options, errors."""
from __future__ import annotations

import pytest
import torch
from zoo_cases import (
    check_backends_agree_with_gates_open,
    manifest,
    state_keys,
)

from effseg.models import ABCNet, create_model
from effseg.nn import LinearAttention


def test_state_dict_matches_geoseg():
    # Generated from GeoSeg's ABCNet.py (n_classes=6) with timm's swsl_resnet18 names.
    assert state_keys(ABCNet(6)) == manifest("abcnet")


def test_three_attention_blocks_with_backend():
    m = ABCNet(6, backend="ref")
    att = [mod for mod in m.modules() if isinstance(mod, LinearAttention)]
    assert len(att) == 3
    assert all(a.kind == "taylor" and not a.residual and a.backend == "ref" for a in att)


def test_train_returns_logits_and_two_aux():
    m = create_model("abcnet", 5).train()
    outs = m(torch.randn(2, 3, 70, 45))
    assert isinstance(outs, tuple) and len(outs) == 3
    assert all(o.shape == (2, 5, 70, 45) for o in outs)
    m.eval()
    with torch.no_grad():
        y = m(torch.randn(2, 3, 64, 64))
    assert isinstance(y, torch.Tensor) and y.shape == (2, 5, 64, 64)


def test_aux_heads_follow_context_path():
    m = create_model("abcnet", 3).train()
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    _, aux16, aux32 = m(x)
    cp8, cp16 = m.cp(x)
    torch.testing.assert_close(aux16, m.conv_out16(cp8))
    torch.testing.assert_close(aux32, m.conv_out32(cp16))
    assert cp8.shape[-2:] == (8, 8) and cp16.shape[-2:] == (4, 4)


def test_in_channels_reaches_both_paths():
    m = ABCNet(6, in_channels=4)
    sd = m.state_dict()
    assert sd["cp.resnet.conv1.weight"].shape == (64, 4, 7, 7)
    assert sd["sp.conv1.conv.weight"].shape == (64, 4, 7, 7)


def test_backends_agree_with_attention_active():
    check_backends_agree_with_gates_open("abcnet")


@pytest.mark.parametrize("kw,arg", [({"backend": "cuda"}, "backend"),
                                    ({"in_channels": 0}, "in_channels"),
                                    ({"num_classes": 0}, "num_classes")])
def test_bad_options(kw, arg):
    kw = {"num_classes": 6, **kw}
    with pytest.raises(ValueError, match=arg):
        ABCNet(**kw)
