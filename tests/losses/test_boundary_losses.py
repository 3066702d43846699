"""BoundaryLoss (Kervadec) and HausdorffDTLoss (Karimi): hand values, the numpy reference,
gradcheck, ignore_index, absent classes."""
import loss_reference as ref
import numpy as np
import pytest
import torch

from effseg.losses import BoundaryLoss, HausdorffDTLoss


def _blocky(B, K, H, W, seed, ignore_frac=0.1, absent=True):
    g = torch.Generator().manual_seed(seed)
    hi = K - 1 if absent else K
    t = torch.randint(0, hi, (B, (H + 2) // 3, (W + 2) // 3), generator=g)
    t = t.repeat_interleave(3, 1).repeat_interleave(3, 2)[:, :H, :W].contiguous()
    t[torch.rand(B, H, W, generator=g) < ignore_frac] = 255
    return t, g


def test_boundary_loss_hand_computed():
    # target 0 0 1 1: phi_0 = -1 0 1 2, phi_1 = 2 1 0 -1; with equal logits p = 1/2.
    target = torch.tensor([[[0, 0, 1, 1]]])
    logits = torch.zeros(1, 2, 1, 4)
    assert BoundaryLoss()(logits, target).item() == pytest.approx(0.5 * 4 / 8)
    # Confident and right: sum of g * phi = (-1 + 0) + (0 - 1) over 8 entries.
    right = 20 * torch.nn.functional.one_hot(target, 2).permute(0, 3, 1, 2).float()
    assert BoundaryLoss()(right, target).item() == pytest.approx(-2 / 8, abs=1e-6)
    assert BoundaryLoss(classes=[1])(right, target).item() == pytest.approx(-1 / 4, abs=1e-6)


def test_hausdorff_hand_computed():
    # target 0 0 1 1, prediction 0 1 1 1 (argmax), p = softmax of logits 0 / 1.
    target = torch.tensor([[[0, 0, 1, 1]]])
    pred = torch.tensor([[[0, 1, 1, 1]]])
    logits = torch.nn.functional.one_hot(pred, 2).permute(0, 3, 1, 2).double()
    p1 = torch.sigmoid(torch.tensor(1.0, dtype=torch.float64)).item()  # confident prob
    # Fields (distance to the boundary): d_G = 2 1 1 2 for both classes; d_P = 1 1 2 3.
    d = np.array([2, 1, 1, 2]) ** 2 + np.array([1, 1, 2, 3]) ** 2
    p_class1 = np.array([1 - p1, p1, p1, p1])
    g1 = np.array([0, 0, 1, 1])
    err = (p_class1 - g1) ** 2  # the same for class 0
    want = 2 * (err * d).sum() / 8
    assert HausdorffDTLoss()(logits, target).item() == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("B,K,H,W", [(2, 3, 7, 9), (1, 4, 10, 6)])
@pytest.mark.parametrize("classes", [None, [1, 2]])
def test_match_reference(B, K, H, W, classes):
    target, g = _blocky(B, K, H, W, seed=K * H)
    logits = torch.randn(B, K, H, W, generator=g, dtype=torch.float64)
    got = BoundaryLoss(classes=classes)(logits, target).item()
    want = ref.boundary_loss(logits.numpy(), target.numpy(), classes=classes)
    assert got == pytest.approx(want, rel=1e-6, abs=1e-9)
    got = HausdorffDTLoss(classes=classes)(logits, target).item()
    want = ref.hausdorff_loss(logits.numpy(), target.numpy(), classes=classes)
    assert got == pytest.approx(want, rel=1e-6, abs=1e-9)
    got = HausdorffDTLoss(alpha=1.0, classes=classes)(logits, target).item()
    want = ref.hausdorff_loss(logits.numpy(), target.numpy(), alpha=1.0, classes=classes)
    assert got == pytest.approx(want, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_reductions(reduction):
    target, g = _blocky(2, 3, 6, 6, seed=5)
    logits = torch.randn(2, 3, 6, 6, generator=g, dtype=torch.float64)
    for cls in (BoundaryLoss, HausdorffDTLoss):
        mean = cls()(logits, target)
        other = cls(reduction=reduction)(logits, target)
        n = (target != 255).sum()
        if reduction == "none":
            assert other.shape == (2, 6, 6) and (other[target == 255] == 0).all()
            other = other.sum()
        torch.testing.assert_close(other / n, mean)


@pytest.mark.parametrize("cls", [BoundaryLoss, HausdorffDTLoss])
def test_gradcheck(cls):
    target, g = _blocky(1, 3, 5, 4, seed=7)
    logits = torch.randn(1, 3, 5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    # HausdorffDTLoss's d_P depends on the argmax, which is locally constant (no ties here).
    assert torch.autograd.gradcheck(lambda x: cls()(x, target), (logits,))


def test_perfect_prediction_is_minimal():
    target, g = _blocky(2, 3, 9, 9, seed=11, ignore_frac=0.0)
    perfect = 30 * torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).double()
    noisy = perfect + 40 * torch.randn(perfect.shape, generator=g, dtype=torch.float64)
    assert HausdorffDTLoss()(perfect, target).item() == pytest.approx(0, abs=1e-12)
    assert HausdorffDTLoss()(noisy, target).item() > 1
    b_perfect = BoundaryLoss()(perfect, target).item()
    assert b_perfect <= 0 and b_perfect < BoundaryLoss()(noisy, target).item()
    # sum_k p_k phi_k is smallest at the one-hot of the target, pixel by pixel.
    assert b_perfect < BoundaryLoss()(torch.zeros_like(perfect), target).item()


@pytest.mark.parametrize("cls", [BoundaryLoss, HausdorffDTLoss])
def test_ignored_pixels_change_nothing(cls):
    target, g = _blocky(2, 3, 8, 8, seed=13, ignore_frac=0.3)
    logits = torch.randn(2, 3, 8, 8, generator=g, requires_grad=True)
    other = logits.detach().clone()
    ign = (target == 255).unsqueeze(1).expand_as(other)
    other[ign] = 10 * torch.randn(int(ign.sum()), generator=g)
    other.requires_grad_(True)
    a, b = cls()(logits, target), cls()(other, target)
    assert a.item() == pytest.approx(b.item(), rel=1e-6)
    (ga,) = torch.autograd.grad(a, logits)
    (gb,) = torch.autograd.grad(b, other)
    torch.testing.assert_close(ga, gb)
    assert (ga[ign] == 0).all()


@pytest.mark.parametrize("cls", [BoundaryLoss, HausdorffDTLoss])
def test_absent_and_full_classes_and_all_ignore(cls):
    logits = torch.randn(3, 3, 6, 6, requires_grad=True)
    target = torch.zeros(3, 6, 6, dtype=torch.long)  # image 0: class 0 fills it
    target[1, :3] = 1  # image 1: class 2 absent
    target[2] = 255  # image 2: all ignored
    v = cls()(logits, target)
    (grad,) = torch.autograd.grad(v, logits)
    assert torch.isfinite(v) and torch.isfinite(grad).all() and (grad[2] == 0).all()
    v = cls()(logits, torch.full((3, 6, 6), 255))
    (grad,) = torch.autograd.grad(v, logits)
    assert v.item() == 0 and (grad == 0).all()


def test_errors():
    x, t = torch.randn(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="classes"):
        BoundaryLoss(classes=[0, 3])(x, t)
    with pytest.raises(ValueError, match="classes"):
        BoundaryLoss(classes=[])
    with pytest.raises(ValueError, match="alpha"):
        HausdorffDTLoss(alpha=0)
    with pytest.raises(ValueError, match="target"):
        HausdorffDTLoss()(x, torch.full((1, 4, 4), -1))
    with pytest.raises(ValueError, match="target"):
        BoundaryLoss()(x.to("meta"), t)
