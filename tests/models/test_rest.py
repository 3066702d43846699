"""The ResT encoder: stage strides and channels, attention semantics, DropPath, errors."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from effseg.models import count_parameters
from effseg.models.backbones import ResT, rest_lite
from effseg.models.backbones.rest import Attention, DropPath


def test_features_and_channels():
    m = rest_lite(in_channels=4, out_indices=(0, 1, 2, 3)).eval()
    with torch.no_grad():
        feats = m(torch.randn(2, 4, 64, 96))
    assert [f.shape[1] for f in feats] == [64, 128, 256, 512] and m.channels == (64, 128, 256, 512)
    assert [tuple(f.shape[-2:]) for f in feats] == [(16, 24), (8, 12), (4, 6), (2, 3)]
    # The final LayerNorm is on the last stage only: it normalises each token's channels.
    last = feats[-1].flatten(2)
    torch.testing.assert_close(last.mean(1), torch.zeros_like(last.mean(1)), atol=1e-5, rtol=0)


def test_rest_lite_size():
    # The cp.ResT.* parameters of GeoSeg's BANet (ResT-Lite without a classifier).
    assert count_parameters(rest_lite()) == 9_995_300


def test_attention_is_softmax_attention():
    """Without reduction or head mixing, the block is standard multi-head attention."""
    torch.manual_seed(0)
    att = Attention(32, num_heads=4, qkv_bias=True).eval()
    x = torch.randn(2, 6 * 5, 32)
    q = att.q(x).reshape(2, 30, 4, 8).transpose(1, 2)
    k, v = att.kv(x).reshape(2, 30, 2, 4, 8).permute(2, 0, 3, 1, 4)
    want = att.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(2, 30, 32))
    torch.testing.assert_close(att(x, 6, 5), want, rtol=1e-5, atol=1e-5)


def test_spatial_reduction_and_transform_shapes():
    att = Attention(32, num_heads=2, sr_ratio=4, apply_transform=True)
    assert att.apply_transform and att.sr.stride == (4, 4)
    assert att(torch.randn(1, 16 * 8, 32), 16, 8).shape == (1, 128, 32)
    # One head: nothing to mix (ResT's rule), so no transform parameters.
    assert not Attention(32, num_heads=1, apply_transform=True).apply_transform


def test_drop_path():
    d = DropPath(0.5)
    x = torch.ones(64, 3, 2)
    d.eval()
    assert d(x) is x
    d.train()
    torch.manual_seed(0)
    y = d(x)
    per_sample = y.flatten(1)
    assert set(per_sample.unique().tolist()) == {0.0, 2.0}
    assert (per_sample == per_sample[:, :1]).all()     # whole samples are dropped


@pytest.mark.parametrize("kw,arg", [({"embed_dims": (64, 128, 256)}, "embed_dims"),
                                    ({"num_heads": (1, 2, 3, 8)}, "embed_dims"),
                                    ({"depths": (2, 0, 2, 2)}, "depths"),
                                    ({"drop_path_rate": -0.1}, "drop_path_rate"),
                                    ({"out_indices": (4,)}, "out_indices")])
def test_bad_options(kw, arg):
    with pytest.raises(ValueError, match=arg):
        ResT(**kw)
