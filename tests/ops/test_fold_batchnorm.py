"""fold_batchnorm: conv with the folded weight / bias equals conv followed by eval-mode BN."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from effseg.ops import depthwise_conv2d, fold_batchnorm


def _bn(C, affine=True, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    bn = nn.BatchNorm2d(C, affine=affine, eps=1e-3).to(dtype)
    bn.running_mean.copy_(torch.randn(C, generator=g))
    bn.running_var.copy_(torch.rand(C, generator=g) * 2 + 0.1)
    if affine:
        bn.weight.data.copy_(torch.randn(C, generator=g))
        bn.bias.data.copy_(torch.randn(C, generator=g))
    return bn.eval()


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("with_bias", [True, False])
def test_depthwise_fold_matches_unfused_pair(require_backend, affine, with_bias):
    require_backend("cpp")
    C = 12
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, C, 15, 13, generator=g, dtype=torch.float64)
    w = torch.randn(C, 1, 8, 8, generator=g, dtype=torch.float64)
    b = torch.randn(C, generator=g, dtype=torch.float64) if with_bias else None
    bn = _bn(C, affine, dtype=torch.float64)
    with torch.no_grad():
        want = F.relu6(bn(F.conv2d(x, w, b, padding="same", groups=C)))
        fw, fb = fold_batchnorm(w, b, bn)
        got = depthwise_conv2d(x, fw, fb, padding="same", activation="relu6")
    assert fw.shape == w.shape and fb.shape == (C,)
    assert (got - want).abs().max() < 1e-10


def test_pointwise_fold_and_float32():
    bn = _bn(7, seed=2)
    conv = nn.Conv2d(5, 7, 1, bias=True)
    x = torch.randn(3, 5, 6, 6)
    with torch.no_grad():
        fw, fb = fold_batchnorm(conv.weight, conv.bias, bn)
        err = (F.conv2d(x, fw, fb) - bn(conv(x))).abs().max()
    assert fw.dtype == torch.float32 and err < 1e-5


def test_fold_is_differentiable():
    bn = _bn(4, seed=3)
    w = torch.randn(4, 1, 3, 3, requires_grad=True)
    fw, fb = fold_batchnorm(w, None, bn)
    (fw.sum() + fb.sum()).backward()
    assert w.grad is not None and bn.weight.grad is not None and bn.bias.grad is not None


def test_errors():
    w = torch.randn(4, 1, 3, 3)
    with pytest.raises(ValueError, match="bn has 5 channels but conv_weight has 4"):
        fold_batchnorm(w, None, _bn(5))
    with pytest.raises(ValueError, match="conv_bias must have shape"):
        fold_batchnorm(w, torch.zeros(3), _bn(4))
    with pytest.raises(ValueError, match="no running statistics"):
        fold_batchnorm(w, None, nn.BatchNorm2d(4, track_running_stats=False))
    with pytest.raises(TypeError, match="bn must be a BatchNorm"):
        fold_batchnorm(w, None, nn.LayerNorm(4))
