"""One (H, W) mask pair, as the paper's boundary-iou-api and most users call it, equals the
batch of one; and pixels whose logits are NaN/inf are nodata (skipped and counted), never
the class argmax happens to pick for them."""
import pytest
import torch

from effseg.metrics import SegMetrics, boundary_iou


def _pair(K=3, H=24, W=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, K, (H, W), generator=g)
    target[:4, :] = 255
    logits = torch.randn(K, H, W, generator=g)
    logits[:, 10:16, 6:14] += torch.tensor([3.0, 0, 0]).view(K, 1, 1)  # a blob of class 0
    return logits, target


def _same(a, b):
    for key in ("per_class", "intersection", "union"):
        torch.testing.assert_close(a[key], b[key], equal_nan=True)
    assert a["mean"] == pytest.approx(b["mean"], nan_ok=True)


def test_boundary_iou_single_pair_equals_batch_of_one():
    logits, target = _pair()
    labels = logits.argmax(0)
    single = boundary_iou(labels, target, num_classes=3)
    _same(single, boundary_iou(labels[None], target[None], num_classes=3))
    _same(boundary_iou(logits, target), single)  # logits (K, H, W) with target (H, W)
    assert 0 < single["mean"] < 1


def test_boundary_iou_single_pair_shape_errors():
    t = torch.zeros(4, 4, dtype=torch.long)
    with pytest.raises(ValueError, match=r"with target \(H, W\), pred must be"):
        boundary_iou(torch.zeros(1, 1, 4, 4), t)
    with pytest.raises(ValueError, match=r"pred labels have shape"):
        boundary_iou(torch.zeros(4, 5, dtype=torch.long), t, num_classes=2)
    with pytest.raises(ValueError, match=r"target must be \(B, H, W\) or one image"):
        boundary_iou(t, torch.zeros(4, dtype=torch.long), num_classes=2)


def test_seg_metrics_accepts_one_image():
    logits, target = _pair()
    a, b = SegMetrics(3), SegMetrics(3)
    a.update(logits, target)
    b.update(logits[None], target[None])
    assert torch.equal(a.matrix, b.matrix)


def _nodata(logits):
    bad = logits.clone()
    bad[:, 6:9, :] = float("nan")  # a nodata band with valid targets under it
    bad[0, 20, 3] = float("inf")
    bad[2, 21, 5] = float("-inf")
    return bad


def test_seg_metrics_skips_nonfinite_logits():
    logits, target = _pair()
    bad = _nodata(logits)
    skipped = (target != 255) & ~torch.isfinite(bad).all(0)
    m = SegMetrics(3)
    m.update(bad, target)
    want = SegMetrics(3)
    want.update(logits, torch.where(skipped, 255, target))  # as if those targets were ignored
    assert torch.equal(m.matrix, want.matrix)
    r = m.compute()
    assert r["nonfinite_pixels"] == m.nonfinite == int(skipped.sum()) > 0
    assert want.compute()["nonfinite_pixels"] == 0


def test_seg_metrics_nonfinite_count_merges_and_resets():
    logits, target = _pair()
    a, b = SegMetrics(3), SegMetrics(3)
    a.update(_nodata(logits), target)
    b.update(_nodata(logits), target)
    n = a.nonfinite
    assert a.merge(b).nonfinite == 2 * n
    a.reset()
    assert a.nonfinite == 0 and a.compute()["nonfinite_pixels"] == 0


def test_all_nan_logits_count_nothing():
    logits, target = _pair()
    m = SegMetrics(3)
    m.update(torch.full_like(logits, float("nan")), target)
    r = m.compute()
    assert m.matrix.sum() == 0 and r["nonfinite_pixels"] == int((target != 255).sum())
    assert r["mIoU"] != r["mIoU"]  # NaN: a diverged model does not score


def test_boundary_iou_skips_nonfinite_logits():
    logits, target = _pair()
    bad = _nodata(logits)
    skipped = (target != 255) & ~torch.isfinite(bad).all(0)
    got = boundary_iou(bad, target)
    _same(got, boundary_iou(logits, torch.where(skipped, 255, target)))
    assert got["nonfinite_pixels"] == int(skipped.sum())
