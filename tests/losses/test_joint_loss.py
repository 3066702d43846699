"""JointLoss and its schedules."""
import pytest
import torch

from effseg.losses import (
    BoundaryLoss,
    CrossEntropyLoss,
    DistanceLoss,
    JointLoss,
    LinearRamp,
    Rebalance,
)


def _case():
    g = torch.Generator().manual_seed(0)
    return torch.randn(2, 3, 6, 6, generator=g, requires_grad=True), torch.randint(0, 3, (2, 6, 6), generator=g)


def test_weighted_sum_and_last_terms():
    logits, target = _case()
    ce, dl = CrossEntropyLoss(), DistanceLoss()
    joint = JointLoss([ce, dl], [1.0, 0.5])
    v = joint(logits, target)
    want = ce(logits, target) + 0.5 * dl(logits, target)
    torch.testing.assert_close(v, want)
    assert len(joint.last_terms) == 2 and not joint.last_terms[0].requires_grad
    v.backward()
    assert torch.isfinite(logits.grad).all()


def test_rebalance_schedule():
    s = Rebalance(start=0.01, step=0.01, cap=0.05)
    assert s.alpha(0) == pytest.approx(0.01) and s.alpha(3) == pytest.approx(0.04)
    assert s.alpha(100) == pytest.approx(0.05)
    assert s(2, [1.0, 2.0]) == pytest.approx([0.97, 0.06])
    joint = JointLoss([CrossEntropyLoss(), BoundaryLoss()], schedule=Rebalance())
    assert joint.current_weights() == pytest.approx([0.99, 0.01])
    joint.step()
    joint.step()
    assert joint.epoch == 2 and joint.current_weights() == pytest.approx([0.97, 0.03])
    joint.set_epoch(500)
    assert joint.current_weights() == pytest.approx([0.01, 0.99])


def test_linear_ramp_and_zero_weight_term_is_skipped():
    calls = []

    def counting(logits, target):
        calls.append(1)
        return logits.sum() * 0 + 1.0

    joint = JointLoss([CrossEntropyLoss(), counting], [1.0, 2.0], schedule=LinearRamp(0.0, 1.0, epochs=4))
    logits, target = _case()
    joint(logits, target)
    assert calls == [] and joint.current_weights() == pytest.approx([1.0, 0.0])
    joint.set_epoch(1)
    v = joint(logits, target)
    assert calls == [1] and joint.current_weights() == pytest.approx([1.0, 0.5])
    torch.testing.assert_close(v, CrossEntropyLoss()(logits, target) + 0.5)
    joint.set_epoch(9)
    assert joint.current_weights() == pytest.approx([1.0, 2.0])


def test_epoch_in_state_dict():
    a = JointLoss([CrossEntropyLoss(weight=[1, 2, 3]), DistanceLoss()], schedule=Rebalance())
    a.set_epoch(7)
    b = JointLoss([CrossEntropyLoss(weight=[1, 1, 1]), DistanceLoss()], schedule=Rebalance())
    b.load_state_dict(a.state_dict())
    assert b.epoch == 7 and torch.equal(b.losses[0].weight, a.losses[0].weight)


def test_errors():
    with pytest.raises(ValueError, match="weights"):
        JointLoss([CrossEntropyLoss()], [1.0, 2.0])
    with pytest.raises(TypeError, match="losses"):
        JointLoss([])
    with pytest.raises(TypeError, match="schedule"):
        JointLoss([CrossEntropyLoss()], schedule=3)
    with pytest.raises(ValueError, match="term"):
        JointLoss([CrossEntropyLoss()], schedule=Rebalance(term=2))
    with pytest.raises(ValueError, match="epoch"):
        JointLoss([CrossEntropyLoss()]).set_epoch(-1)
    with pytest.raises(ValueError, match="epochs"):
        LinearRamp(epochs=0)
