"""DistanceLoss (Lossd): hand-computed values, the numpy reference, straight-through
gradients, ignore_index, absent classes."""
import math

import loss_reference as ref
import numpy as np
import pytest
import torch

from effseg.losses import DistanceLoss


def _logits_for(labels, K, scale=5.0, dtype=torch.float64):
    """Logits whose argmax is `labels` (B, H, W)."""
    return scale * torch.nn.functional.one_hot(labels, K).permute(0, 3, 1, 2).to(dtype)


def _row(labels):
    return torch.tensor([[labels]])  # (1, 1, W)


def test_hand_computed_one_row():
    # target 0 0 0 1 1 1: d_in = 3 2 1 | 1 2 3, d_out of the other class = 1 2 3 on each
    # side, so the largest distance is 3 and c(d) = log(1 + d) / log 4.
    target = _row([0, 0, 0, 1, 1, 1])
    # Pixel 2 predicted as class 1: one over-segmentation of class 1 at d_out = 1 and one
    # under-segmentation of class 0 at d_in = 1, c(1) = 1/2 each; 6 valid pixels; mean of
    # the two classes.
    near = _logits_for(_row([0, 0, 1, 1, 1, 1]), 2)
    assert DistanceLoss()(near, target).item() == pytest.approx(1 / 12, rel=1e-6)
    # Pixel 0 predicted as class 1 instead: both distances are 3, c(3) = 1: twice the loss.
    far = _logits_for(_row([1, 0, 0, 1, 1, 1]), 2)
    assert DistanceLoss()(far, target).item() == pytest.approx(1 / 6, rel=1e-6)
    # Term weights and class weights: class 0 = 0.5/6 (under), class 1 = 2 * 0.5/6 (over).
    got = DistanceLoss(over_weight=2.0, class_weights=[1.0, 3.0])(near, target).item()
    assert got == pytest.approx((0.5 / 6 + 3 * 1.0 / 6) / 4, rel=1e-6)
    assert DistanceLoss(under_weight=0.0)(near, target).item() == pytest.approx(0.5 / 12, rel=1e-6)


def test_perfect_prediction_is_zero_and_worse_is_larger():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 4, (2, 12, 10), generator=g)
    loss = DistanceLoss()
    assert loss(_logits_for(target, 4), target).item() == 0.0
    values = []
    for n_wrong in (5, 30, 80):
        pred = target.clone()
        flat = pred.view(-1)
        idx = torch.randperm(flat.numel(), generator=g)[:n_wrong]
        flat[idx] = (flat[idx] + 1) % 4
        values.append(loss(_logits_for(pred, 4), target).item())
    assert 0 < values[0] < values[1] < values[2]


def test_farther_error_costs_more():
    target = torch.zeros(1, 9, 9, dtype=torch.long)
    target[0, 3:6, 3:6] = 1
    near, far = target.clone(), target.clone()
    near[0, 2, 4] = 1  # a false positive of class 1 next to the square
    far[0, 0, 0] = 1  # one in the corner
    loss = DistanceLoss()
    assert loss(_logits_for(far, 2), target) > loss(_logits_for(near, 2), target)


@pytest.mark.parametrize("B,K,H,W", [(2, 3, 7, 9), (3, 5, 6, 5), (1, 2, 1, 8)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_matches_reference(B, K, H, W, reduction):
    g = torch.Generator().manual_seed(B * 100 + K * 10 + H)
    # Blocky labels so there are real regions, plus ignored pixels and an absent class.
    target = torch.randint(0, K - 1, (B, (H + 1) // 2, (W + 1) // 2), generator=g)
    target = target.repeat_interleave(2, 1).repeat_interleave(2, 2)[:, :H, :W].contiguous()
    target[torch.rand(B, H, W, generator=g) < 0.1] = 255
    logits = torch.randn(B, K, H, W, generator=g, dtype=torch.float64, requires_grad=True)
    cw = [0.5 + k for k in range(K)]
    loss = DistanceLoss(class_weights=cw, over_weight=1.5, under_weight=0.7, reduction=reduction)
    got = loss(logits, target)
    want, dprob = ref.lossd(logits.detach().numpy(), target.numpy(), class_weights=cw,
                            over_weight=1.5, under_weight=0.7, reduction=reduction)
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-6, atol=1e-9)
    # The straight-through gradient is that of sum(dprob * softmax(logits)).
    if reduction == "none":
        got = got.sum()
    (grad,) = torch.autograd.grad(got, logits)
    surrogate = (torch.from_numpy(dprob) * logits.softmax(1)).sum()
    (want_grad,) = torch.autograd.grad(surrogate, logits)
    torch.testing.assert_close(grad, want_grad, rtol=1e-6, atol=1e-10)


def test_value_is_straight_through():
    # The forward value only depends on the argmax, not on the logits' confidence.
    g = torch.Generator().manual_seed(1)
    target = torch.randint(0, 3, (2, 8, 8), generator=g)
    logits = torch.randn(2, 3, 8, 8, generator=g)
    loss = DistanceLoss()
    assert loss(logits, target).item() == pytest.approx(loss(7 * logits, target).item(), rel=1e-6)


def test_ignored_pixels_change_nothing():
    g = torch.Generator().manual_seed(2)
    target = torch.randint(0, 3, (2, 10, 10), generator=g)
    target[:, 2:5, 3:8] = 255
    logits = torch.randn(2, 3, 10, 10, generator=g, requires_grad=True)
    other = logits.detach().clone()
    ign = (target == 255).unsqueeze(1).expand_as(other)
    other[ign] = torch.randn(int(ign.sum()), generator=g) * 10
    other.requires_grad_(True)
    loss = DistanceLoss()
    a, b = loss(logits, target), loss(other, target)
    assert a.item() == b.item()
    (ga,) = torch.autograd.grad(a, logits)
    (gb,) = torch.autograd.grad(b, other)
    assert torch.equal(ga, gb)
    assert (ga[ign] == 0).all()


def test_absent_classes_and_all_ignore_are_finite():
    loss = DistanceLoss()
    # Target all class 0 (class 1 absent, class 0 fills the image: both distances infinite),
    # prediction with one pixel of class 1: each side costs c(inf) = 1 for that pixel.
    target = torch.zeros(1, 1, 6, dtype=torch.long)
    logits = _logits_for(_row([0, 0, 1, 0, 0, 0]), 3).requires_grad_(True)
    v = loss(logits, target)
    assert v.item() == pytest.approx((1 / 6 + 1 / 6) / 2)
    (grad,) = torch.autograd.grad(v, logits)
    assert torch.isfinite(grad).all()
    # One image entirely ignored, then the whole batch ignored.
    target = torch.randint(0, 3, (2, 5, 5))
    target[1] = 255
    logits = torch.randn(2, 3, 5, 5, requires_grad=True)
    v = loss(logits, target)
    (grad,) = torch.autograd.grad(v, logits)
    assert torch.isfinite(v) and torch.isfinite(grad).all() and (grad[1] == 0).all()
    only = torch.full((2, 5, 5), 255)
    v = loss(logits, only)
    v.backward()
    assert v.item() == 0.0 and torch.equal(logits.grad, torch.zeros_like(logits))
    assert torch.equal(DistanceLoss(reduction="none")(logits, only), torch.zeros(2))


def test_half_precision_logits():
    g = torch.Generator().manual_seed(3)
    target = torch.randint(0, 3, (1, 8, 8), generator=g)
    logits = torch.randn(1, 3, 8, 8, generator=g)
    want = DistanceLoss()(logits.to(torch.bfloat16).float(), target)
    got = DistanceLoss()(logits.to(torch.bfloat16), target)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(want.item(), rel=1e-6)


def test_errors():
    loss = DistanceLoss()
    x, t = torch.randn(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="logits"):
        loss(torch.randn(3, 4, 4), t)
    with pytest.raises(TypeError, match="logits"):
        loss(x.long(), t)
    with pytest.raises(TypeError, match="target"):
        loss(x, t.float())
    with pytest.raises(ValueError, match="target"):
        loss(x, torch.zeros(1, 4, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="target"):
        loss(x, torch.full((1, 4, 4), 3))
    with pytest.raises(ValueError, match="class_weights"):
        DistanceLoss(class_weights=[1.0, 2.0])(x, t)
    with pytest.raises(ValueError, match="class_weights"):
        DistanceLoss(class_weights=[1.0, -2.0, 1.0])
    with pytest.raises(ValueError, match="over_weight"):
        DistanceLoss(over_weight=math.inf)
    with pytest.raises(ValueError, match="reduction"):
        DistanceLoss(reduction="avg")


def test_terms_split_over_and_under():
    target = _row([0, 0, 0, 1, 1, 1])
    t = DistanceLoss().terms(_logits_for(_row([0, 0, 1, 1, 1, 1]), 3), target)
    torch.testing.assert_close(t["over"], torch.tensor([[0.0, 0.5 / 6, 0.0]], dtype=torch.float64))
    torch.testing.assert_close(t["under"], torch.tensor([[0.5 / 6, 0.0, 0.0]], dtype=torch.float64))
    assert t["present"].tolist() == [[True, True, False]] and t["n_valid"].tolist() == [6.0]
