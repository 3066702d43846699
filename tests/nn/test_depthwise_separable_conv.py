"""DepthwiseSeparableConv: dw conv -> BN -> act -> 1x1 conv -> BN, on effseg's op."""
import pytest
import torch
import torch.nn.functional as F

from effseg.nn import DepthwiseSeparableConv

ACT = {None: lambda t: t, "relu": F.relu, "relu6": F.relu6, "gelu": F.gelu, "silu": F.silu}


def _randomise_bn(m, seed=0):
    g = torch.Generator().manual_seed(seed)
    for bn in (m.dw_bn, m.pw_bn):
        if bn is None:
            continue
        bn.running_mean.copy_(torch.randn(bn.num_features, generator=g))
        bn.running_var.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
        bn.weight.data.copy_(torch.randn(bn.num_features, generator=g))
        bn.bias.data.copy_(torch.randn(bn.num_features, generator=g))


def _plain(m, x):
    """The same block from torch.nn pieces (BN in the module's current mode)."""
    y = F.conv2d(x, m.dw.weight, None, m.dw.stride, m.padding, m.dw.dilation, m.dw.groups)
    y = ACT[m.activation](m.dw_bn(y))
    y = m.pw(y)
    if m.pw_bn is not None:
        y = m.pw_bn(y)
    return ACT[m.pw_activation](y)


@pytest.mark.parametrize("k,stride,dilation,act,pw_bn,pw_act", [
    (3, 1, 1, "relu6", True, None),
    (8, 1, 1, "gelu", True, "relu"),       # UNetFormer's even 8 x 8 kernel, "same"
    (5, 2, 1, "silu", False, None),
    (4, 2, 2, "relu", True, "silu"),
    ((3, 7), 1, (2, 1), None, False, "gelu"),
])
def test_eval_mode_folds_and_matches_plain_modules(require_backend, k, stride, dilation, act, pw_bn, pw_act):
    require_backend("cpp")
    torch.manual_seed(0)
    m = DepthwiseSeparableConv(12, 20, k, stride, dilation, act, pw_bn=pw_bn, pw_activation=pw_act)
    _randomise_bn(m)
    m.eval()
    x = torch.randn(2, 12, 23, 18)
    with torch.no_grad():
        y, want = m(x), _plain(m, x)
    assert y.shape == want.shape
    if stride == 1:
        assert y.shape[2:] == x.shape[2:]
    assert (y - want).abs().max() / want.abs().max().clamp_min(1) < 2e-5


def test_training_mode_batch_statistics_and_gradients(require_backend):
    require_backend("cpp")
    torch.manual_seed(1)
    m = DepthwiseSeparableConv(8, 6, 3, activation="relu6").train()
    ref = DepthwiseSeparableConv(8, 6, 3, activation="relu6").train()
    ref.load_state_dict(m.state_dict())
    x = torch.randn(4, 8, 10, 9)
    y, want = m(x), _plain(ref, x)
    assert (y - want).abs().max() < 1e-5
    y.square().sum().backward()
    want.square().sum().backward()
    for (name, p), q in zip(m.named_parameters(), ref.parameters()):
        assert (p.grad - q.grad).abs().max() / q.grad.abs().max().clamp_min(1) < 1e-4, name
    assert torch.allclose(m.dw_bn.running_mean, ref.dw_bn.running_mean)


def test_state_dict_layout():
    m = DepthwiseSeparableConv(4, 8, 8)
    keys = set(m.state_dict())
    assert {"dw.weight", "dw_bn.weight", "dw_bn.running_mean", "pw.weight", "pw_bn.bias"} <= keys
    assert m.dw.weight.shape == (4, 1, 8, 8) and m.pw.weight.shape == (8, 4, 1, 1)


def test_torch_compile_fullgraph(require_backend):
    require_backend("cpp")
    m = DepthwiseSeparableConv(6, 6, 5, activation="gelu").eval()
    _randomise_bn(m, 2)
    x = torch.randn(1, 6, 12, 12)
    with torch.no_grad():
        out = torch.compile(m, fullgraph=True, backend="aot_eager")(x)
        assert (out - m(x)).abs().max() < 1e-5


def test_bad_arguments():
    with pytest.raises(ValueError, match="activation must be one of"):
        DepthwiseSeparableConv(4, 4, activation="prelu")
    with pytest.raises(ValueError, match="pw_activation must be one of"):
        DepthwiseSeparableConv(4, 4, pw_activation="tanh")
    with pytest.raises(ValueError, match="in_ch and out_ch"):
        DepthwiseSeparableConv(0, 4)
