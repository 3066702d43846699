"""CrossEntropyLoss, DiceLoss, FocalLoss against torch / hand-computed values."""
import math

import pytest
import torch
import torch.nn.functional as F

from effseg.losses import CrossEntropyLoss, DiceLoss, FocalLoss


def _case(B=2, K=4, H=5, W=6, seed=0, ignore_frac=0.2, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, K, (B, H, W), generator=g)
    target[torch.rand(B, H, W, generator=g) < ignore_frac] = 255
    logits = torch.randn(B, K, H, W, generator=g, dtype=dtype)
    return logits, target


@pytest.mark.parametrize("weight", [None, [0.2, 1.0, 3.0, 0.5]])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_matches_torch(weight, smoothing, reduction):
    logits, target = _case()
    got = CrossEntropyLoss(weight=weight, label_smoothing=smoothing, reduction=reduction)(logits, target)
    w = None if weight is None else torch.tensor(weight, dtype=torch.float64)
    want = F.cross_entropy(logits, target, weight=w, ignore_index=255, label_smoothing=smoothing,
                           reduction=reduction)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_cross_entropy_all_ignored_is_zero_not_nan():
    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    target = torch.full((1, 2, 2), 255)
    assert torch.isnan(F.cross_entropy(logits, target, ignore_index=255))  # torch's behaviour
    for weight in (None, [1.0, 2.0, 3.0]):
        v = CrossEntropyLoss(weight=weight)(logits, target)
        (grad,) = torch.autograd.grad(v, logits)
        assert v.item() == 0 and (grad == 0).all()


def test_dice_hand_computed():
    # 1 x 2 x 1 x 2, target (0, 1), p = (0.8, 0.2) and (0.4, 0.6) for classes 0 / 1.
    logits = torch.log(torch.tensor([[[[0.8, 0.4]], [[0.2, 0.6]]]], dtype=torch.float64))
    target = torch.tensor([[[0, 1]]])
    s = 0.05
    d0 = (2 * 0.8 + s) / (0.8 + 0.4 + 1 + s)
    d1 = (2 * 0.6 + s) / (0.2 + 0.6 + 1 + s)
    got = DiceLoss()(logits, target)
    assert got.item() == pytest.approx(1 - (d0 + d1) / 2, rel=1e-12)
    per_class = DiceLoss(reduction="none")(logits, target)
    torch.testing.assert_close(per_class, torch.tensor([1 - d0, 1 - d1], dtype=torch.float64))
    # Class 1 alone; class absent from the target is left out of the mean.
    assert DiceLoss(classes=[1])(logits, target).item() == pytest.approx(1 - d1, rel=1e-12)
    only0 = torch.tensor([[[0, 0]]])
    d0 = (2 * 1.2 + s) / (1.2 + 2 + s)
    assert DiceLoss()(logits, only0).item() == pytest.approx(1 - d0, rel=1e-12)


def test_dice_perfect_and_ignore():
    logits, target = _case(ignore_frac=0.3)
    perfect = 40 * F.one_hot(target.clamp(max=3), 4).permute(0, 3, 1, 2).double()
    assert DiceLoss(smooth=0.0)(perfect, target).item() == pytest.approx(0, abs=1e-12)
    assert DiceLoss()(logits, target).item() > 0.3
    other = logits.clone()
    ign = (target == 255).unsqueeze(1).expand_as(other)
    other[ign] = 100.0
    assert DiceLoss()(logits, target).item() == DiceLoss()(other, target).item()


def test_focal_gamma_zero_is_cross_entropy_and_hand_value():
    logits, target = _case()
    torch.testing.assert_close(FocalLoss(gamma=0)(logits, target), F.cross_entropy(logits, target, ignore_index=255))
    p = torch.tensor([0.7, 0.2, 0.1], dtype=torch.float64)
    x = torch.log(p).view(1, 3, 1, 1)
    t = torch.zeros(1, 1, 1, dtype=torch.long)
    want = -0.25 * (0.3 ** 2) * math.log(0.7)
    assert FocalLoss(gamma=2, alpha=0.25)(x, t).item() == pytest.approx(want, rel=1e-12)
    assert FocalLoss(gamma=2, alpha=[0.5, 1, 1])(x, t).item() == pytest.approx(2 * want, rel=1e-12)
    none = FocalLoss(reduction="none")(logits, target)
    assert none.shape == target.shape and (none[target == 255] == 0).all()
    torch.testing.assert_close(none.sum(), FocalLoss(reduction="sum")(logits, target))


@pytest.mark.parametrize("make", [
    lambda: CrossEntropyLoss(weight=[1, 2, 3, 4], label_smoothing=0.1),
    lambda: DiceLoss(),
    lambda: FocalLoss(gamma=2.0, alpha=[1, 2, 3, 4]),
    lambda: FocalLoss(gamma=0.5),
])
def test_gradcheck(make):
    logits, target = _case(1, 4, 3, 4, seed=3)
    logits.requires_grad_(True)
    loss = make()
    assert torch.autograd.gradcheck(lambda x: loss(x, target), (logits,))


def test_focal_small_gamma_confident_gradient_is_finite():
    logits = torch.tensor([[[[60.0]], [[0.0]]]], requires_grad=True)
    v = FocalLoss(gamma=0.5)(logits, torch.zeros(1, 1, 1, dtype=torch.long))
    v.backward()
    assert torch.isfinite(logits.grad).all()


def test_errors():
    x, t = torch.randn(1, 3, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long)
    with pytest.raises(ValueError, match="label_smoothing"):
        CrossEntropyLoss(label_smoothing=2)
    with pytest.raises(ValueError, match="weight"):
        CrossEntropyLoss(weight=[1.0, 2.0])(x, t)
    with pytest.raises(ValueError, match="reduction"):
        DiceLoss(reduction="sum")
    with pytest.raises(ValueError, match="smooth"):
        DiceLoss(smooth=-1)
    with pytest.raises(ValueError, match="gamma"):
        FocalLoss(gamma=-1)
    with pytest.raises(ValueError, match="alpha"):
        FocalLoss(alpha=[1.0, 1.0])(x, t)
    with pytest.raises(TypeError, match="target"):
        FocalLoss()(x, t.bool())
