"""UNetFormer: GeoSeg's checkpoint layout, aux output, window attention, options, errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from zoo_cases import manifest, state_keys

from effseg.models import UNetFormer, count_parameters, create_model
from effseg.models.global_local_attention import (
    GlobalLocalAttention,
    reflect_pad_end,
    relative_position_index,
)

NC = 6


@pytest.fixture(scope="module")
def model():
    return create_model("unetformer", NC)


def test_state_dict_matches_geoseg_manifest(model):
    """Keys and shapes of GeoSeg's UNetFormer(num_classes=6) (swsl_resnet18, timm
    features_only): a GeoSeg checkpoint loads strictly."""
    want, got = manifest("unetformer"), state_keys(model)
    missing = sorted(set(dict(want)) - set(dict(got)))
    extra = sorted(set(dict(got)) - set(dict(want)))
    assert not missing and not extra, f"missing {missing[:5]}, extra {extra[:5]}"
    assert dict(got) == dict(want)
    assert got == want                      # same order too
    # GeoSeg's UNetFormer(num_classes=6) has 11,724,894 parameters.
    assert count_parameters(model) == 11_724_894


def test_train_returns_logits_and_aux(model):
    model.train()
    try:
        out = model(torch.randn(2, 3, 64, 32))
    finally:
        model.eval()
    assert isinstance(out, tuple) and len(out) == 2
    assert [tuple(o.shape) for o in out] == [(2, NC, 64, 32)] * 2
    with torch.no_grad():
        y = model(torch.randn(1, 3, 70, 45))
        assert isinstance(y, torch.Tensor) and y.shape == (1, NC, 70, 45)


def test_eval_is_deterministic(model):
    model.eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)


def _window_attention_loops(attn: GlobalLocalAttention, x):
    """The windowed attention written window by window (no reshapes across windows)."""
    b, c, hp, wp = x.shape
    ws, heads = attn.ws, attn.num_heads
    d = c // heads
    qkv = attn.qkv(x)
    bias = attn.relative_position_bias_table[attn.relative_position_index.view(-1)]
    bias = bias.view(ws * ws, ws * ws, heads).permute(2, 0, 1)
    out = torch.zeros_like(x)
    for i in range(0, hp, ws):
        for j in range(0, wp, ws):
            win = qkv[:, :, i:i + ws, j:j + ws].reshape(b, 3, heads, d, ws * ws)
            q, k, v = (win[:, t].transpose(-1, -2) for t in range(3))   # (b, heads, L, d)
            a = torch.softmax(q @ k.transpose(-1, -2) * attn.scale + bias, dim=-1)
            o = (a @ v).transpose(-1, -2).reshape(b, c, ws, ws)
            out[:, :, i:i + ws, j:j + ws] = o
    return out


def test_window_attention_matches_per_window_loops():
    torch.manual_seed(0)
    from effseg.models.unetformer_decoder import ConvSet
    attn = GlobalLocalAttention(16, 4, 4, ConvSet()).eval()
    with torch.no_grad():
        attn.relative_position_bias_table.normal_()
        x = torch.randn(2, 16, 8, 12)
        torch.testing.assert_close(attn._window_attention(x), _window_attention_loops(attn, x),
                                   rtol=1e-5, atol=1e-5)


def test_relative_position_index():
    ws = 3
    idx = relative_position_index(ws)
    assert idx.shape == (9, 9) and idx.dtype == torch.int64
    for a in range(9):
        for b in range(9):
            (i1, j1), (i2, j2) = divmod(a, ws), divmod(b, ws)
            assert idx[a, b] == (i1 - i2 + ws - 1) * (2 * ws - 1) + (j1 - j2 + ws - 1)


@pytest.mark.parametrize("n,pad", [(5, 3), (4, 0), (2, 6), (3, 13), (1, 7)])
@pytest.mark.parametrize("dim", [2, 3])
def test_reflect_pad_end(n, pad, dim):
    shape = [1, 2, 3, 3]
    shape[dim] = n
    x = torch.randn(shape)
    got = reflect_pad_end(x, dim, pad)
    widths = [(0, 0)] * 4
    widths[dim] = (0, pad)
    # numpy's "reflect" continues the reflection past the edge; a size-1 axis repeats.
    want = np.pad(x.numpy(), widths, mode="reflect" if n > 1 else "edge")
    np.testing.assert_array_equal(got.numpy(), want)
    if 0 < pad < n:      # exactly what GeoSeg calls where it can
        f = (0, pad, 0, 0) if dim == 3 else (0, 0, 0, pad)
        assert torch.equal(got, F.pad(x, f, mode="reflect"))


@pytest.mark.parametrize("hw", [(3, 5), (1, 1), (8, 8), (9, 16)])
def test_attention_keeps_size_smaller_and_odd_maps(hw):
    from effseg.models.unetformer_decoder import ConvSet
    torch.manual_seed(0)
    attn = GlobalLocalAttention(16, 8, 8, ConvSet())
    x = torch.randn(2, 16, *hw, requires_grad=True)
    y = attn(x)
    assert y.shape == x.shape
    y.square().sum().backward()
    assert torch.isfinite(x.grad).all()
    assert attn.relative_position_bias_table.grad.abs().sum() > 0


def test_attention_gradcheck():
    from effseg.models.unetformer_decoder import ConvSet
    torch.manual_seed(0)
    attn = GlobalLocalAttention(4, 2, 2, ConvSet()).double().eval()
    x = torch.randn(1, 4, 3, 5, dtype=torch.double, requires_grad=True)
    table = attn.relative_position_bias_table
    assert torch.autograd.gradcheck(lambda a: attn(a), (x,), eps=1e-6, atol=1e-5)
    assert torch.autograd.gradcheck(
        lambda t: torch.func.functional_call(attn, {"relative_position_bias_table": t}, (x,)),
        (table.detach().clone().requires_grad_(),), eps=1e-6, atol=1e-5)


def test_options_change_the_layout():
    m = UNetFormer(NC, window_size=4, decode_channels=32, dropout=0.0)
    sd = m.state_dict()
    assert sd["decoder.b4.attn.relative_position_bias_table"].shape == (49, 8)
    assert sd["decoder.b4.attn.relative_position_index"].shape == (16, 16)
    assert sd["decoder.b4.attn.proj.0.weight"].shape == (32, 1, 4, 4)
    assert sd["decoder.segmentation_head.2.0.weight"].shape == (NC, 32, 1, 1)
    m.eval()
    with torch.no_grad():
        assert m(torch.randn(1, 3, 64, 64)).shape == (1, NC, 64, 64)


def test_resnet50_backbone():
    m = UNetFormer(NC, backbone="resnet50")
    # GeoSeg's UNetFormer(backbone_name="resnet50") (timm names) has 24,240,734.
    assert count_parameters(m) == 24_240_734
    sd = m.state_dict()
    assert sd["backbone.layer4.2.conv3.weight"].shape == (2048, 512, 1, 1)
    assert sd["decoder.p1.pre_conv.0.weight"].shape == (64, 256, 1, 1)


def test_in_channels_reaches_the_stem():
    m = UNetFormer(NC, in_channels=5)
    assert m.state_dict()["backbone.conv1.weight"].shape == (64, 5, 7, 7)


@pytest.mark.parametrize("kw,arg", [
    ({"window_size": 7}, "window_size"), ({"window_size": 0}, "window_size"),
    ({"window_size": 8.0}, "window_size"), ({"decode_channels": 60}, "decode_channels"),
    ({"decode_channels": 8}, "decode_channels"), ({"dropout": 1.5}, "dropout"),
    ({"dropout": "0.1"}, "dropout"), ({"backbone": "swin"}, "backbone"),
    ({"backend": "cuda"}, "backend"), ({"in_channels": 0}, "in_channels"),
])
def test_bad_options(kw, arg):
    with pytest.raises(ValueError, match=arg):
        UNetFormer(NC, **kw)
