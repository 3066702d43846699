"""UNetFormerDW (distillation student) and its MobileNetV2 encoder."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import effseg.models.unetformer_dw as dw_module
import effseg.nn.depthwise_separable_conv as dsc_module
from effseg.models import (
    UNetFormer,
    UNetFormerDW,
    count_parameters,
    create_model,
    model_info,
)
from effseg.models.backbones.mobilenet_v2 import InvertedResidual, MobileNetV2
from effseg.nn import DepthwiseSeparableConv

NC = 6


@pytest.fixture(scope="module")
def model():
    return create_model("unetformer-dw", NC)


def test_size_budget(model):
    n = count_parameters(model)
    assert n <= 3_000_000
    assert abs(n - model_info("unetformer-dw").params_m * 1e6) <= 1e-3 * n


def test_no_dense_spatial_conv(model):
    """Every k x k convolution is depthwise except the encoder's 3x3 stem."""
    dense = [name for name, m in model.named_modules()
             if isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1) and m.groups != m.in_channels]
    assert dense == ["backbone.stem.0"]


def test_backend_reaches_every_depthwise_conv():
    m = UNetFormerDW(NC, backend="ref")
    dws = [x for x in m.modules() if isinstance(x, (DepthwiseSeparableConv, dw_module.DepthwiseConv))]
    assert len(dws) > 20 and all(x.backend == "ref" for x in dws)


def test_depthwise_convs_run_on_the_effseg_op(model, monkeypatch):
    calls = []

    def spy(original):
        def f(*a, **kw):
            calls.append(kw.get("backend"))
            return original(*a, **kw)
        return f

    monkeypatch.setattr(dsc_module, "depthwise_conv2d", spy(dsc_module.depthwise_conv2d))
    monkeypatch.setattr(dw_module, "depthwise_conv2d", spy(dw_module.depthwise_conv2d))
    model.eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    # The aux head runs in training only.
    n_dw = sum(isinstance(x, (DepthwiseSeparableConv, dw_module.DepthwiseConv))
               for name, x in model.named_modules() if not name.startswith("decoder.aux_head"))
    assert len(calls) == n_dw and set(calls) == {"auto"}


def test_train_returns_logits_and_aux(model):
    model.train()
    try:
        out = model(torch.randn(2, 3, 64, 32))
    finally:
        model.eval()
    assert isinstance(out, tuple) and len(out) == 2
    assert [tuple(o.shape) for o in out] == [(2, NC, 64, 32)] * 2
    with torch.no_grad():
        y = model(torch.randn(1, 3, 40, 50))
    assert isinstance(y, torch.Tensor) and y.shape == (1, NC, 40, 50)


def test_decoder_has_the_teachers_layout():
    """Same decoder modules and widths as UNetFormer, so decoder features pair up for
    feature distillation."""
    student = UNetFormerDW(NC)
    teacher = UNetFormer(NC)
    names = [n for n, _ in student.decoder.named_children()]
    assert names == [n for n, _ in teacher.decoder.named_children()]
    for blk in ("b4", "b3", "b2"):
        s, t = getattr(student.decoder, blk), getattr(teacher.decoder, blk)
        assert s.norm1.num_features == t.norm1.num_features == 64


def test_options():
    m = UNetFormerDW(NC, window_size=4, decode_channels=32, in_channels=4)
    sd = m.state_dict()
    assert sd["decoder.b2.attn.relative_position_bias_table"].shape == (49, 8)
    assert sd["decoder.b2.attn.proj.dw.weight"].shape == (32, 1, 4, 4)
    assert sd["backbone.stem.0.weight"].shape == (32, 4, 3, 3)
    m.eval()
    with torch.no_grad():
        assert m(torch.randn(1, 4, 32, 32)).shape == (1, NC, 32, 32)


@pytest.mark.parametrize("kw,arg", [
    ({"window_size": 5}, "window_size"), ({"decode_channels": 12}, "decode_channels"),
    ({"dropout": -0.1}, "dropout"), ({"backend": "gpu"}, "backend"),
])
def test_bad_options(kw, arg):
    with pytest.raises(ValueError, match=arg):
        UNetFormerDW(NC, **kw)


def test_mobilenet_v2_features():
    enc = MobileNetV2(in_channels=2, out_indices=(0, 1, 2, 3, 4)).eval()
    with torch.no_grad():
        feats = enc(torch.randn(1, 2, 64, 96))
    assert [f.shape[1] for f in feats] == [16, 24, 32, 96, 320] == list(enc.channels)
    assert [tuple(f.shape[-2:]) for f in feats] == [(32, 48), (16, 24), (8, 12), (4, 6), (2, 3)]
    # The paper's Table 2: 17 bottlenecks.
    assert sum(isinstance(m, InvertedResidual) for m in enc.modules()) == 17
    with pytest.raises(ValueError, match="out_indices"):
        MobileNetV2(out_indices=(2, 5))


def test_inverted_residual_is_a_linear_bottleneck():
    torch.manual_seed(0)
    blk = InvertedResidual(8, 8, 1, 6).eval()
    assert blk.residual and blk.dwsep.pw_activation is None
    x = torch.randn(1, 8, 5, 7)
    with torch.no_grad():
        hidden = blk.expand(x)
        want = x + blk.dwsep(hidden)
        torch.testing.assert_close(blk(x), want)
        assert (blk.dwsep(hidden) < 0).any()     # no ReLU after the projection
    assert not InvertedResidual(8, 16, 2, 6).residual
