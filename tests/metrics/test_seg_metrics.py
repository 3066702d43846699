"""SegMetrics: hand-computed confusion matrices, a numpy loop reference, merge, sync."""
import math
import os
import tempfile

import numpy as np
import pytest
import torch

from effseg.metrics import SegMetrics


def _nan_equal(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and np.allclose(a, b, equal_nan=True, rtol=1e-12, atol=0)


def test_hand_computed():
    target = torch.tensor([[[0, 0, 1], [1, 2, 255]]])
    pred = torch.tensor([[[0, 1, 1], [1, 0, 2]]])
    m = SegMetrics(4)
    m.update(pred, target)
    r = m.compute()
    want_cm = [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    assert r["confusion_matrix"].tolist() == want_cm
    nan = math.nan
    assert _nan_equal(r["IoU"], [1 / 3, 2 / 3, 0, nan])  # class 3 absent from both
    assert _nan_equal(r["F1"], [1 / 2, 4 / 5, 0, nan])
    assert _nan_equal(r["precision"], [1 / 2, 2 / 3, nan, nan])  # class 2 never predicted
    assert _nan_equal(r["recall"], [1 / 2, 1, 0, nan])
    assert r["mIoU"] == pytest.approx(1 / 3)
    assert r["mF1"] == pytest.approx((0.5 + 0.8) / 3)
    assert r["mPrecision"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert r["OA"] == pytest.approx(3 / 5)


def _loop_reference(pairs, K, ignore=255):
    cm = np.zeros((K, K), np.int64)
    for pred, target in pairs:
        for p, t in zip(pred.ravel(), target.ravel()):
            if t != ignore:
                cm[t, p] += 1
    iou, f1 = [], []
    for k in range(K):
        tp, fp, fn = cm[k, k], cm[:, k].sum() - cm[k, k], cm[k, :].sum() - cm[k, k]
        iou.append(tp / (tp + fp + fn) if tp + fp + fn else np.nan)
        f1.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else np.nan)
    return cm, np.array(iou), np.array(f1), np.trace(cm) / cm.sum()


def test_matches_loop_reference_over_several_updates():
    g = torch.Generator().manual_seed(0)
    K = 5
    m = SegMetrics(K, ignore_index=255)
    pairs = []
    for step in range(3):
        target = torch.randint(0, K - 1, (2, 7, 9), generator=g)  # class 4 never in target
        target[torch.rand(2, 7, 9, generator=g) < 0.2] = 255
        if step % 2:
            logits = torch.randn(2, K, 7, 9, generator=g)
            pred = logits.argmax(1)
            m.update(logits, target)
        else:
            pred = torch.randint(0, K, (2, 7, 9), generator=g).to(torch.int32)
            m.update(pred, target)
        pairs.append((pred.numpy(), target.numpy()))
    cm, iou, f1, oa = _loop_reference(pairs, K)
    r = m.compute()
    assert np.array_equal(r["confusion_matrix"].numpy(), cm)
    assert _nan_equal(r["IoU"], iou) and _nan_equal(r["F1"], f1)
    assert r["mIoU"] == pytest.approx(np.nanmean(iou)) and r["OA"] == pytest.approx(oa)


def test_merge_reset_and_empty():
    g = torch.Generator().manual_seed(1)
    a, b, both = SegMetrics(3), SegMetrics(3), SegMetrics(3)
    for m in (a, b):
        t = torch.randint(0, 3, (1, 4, 4), generator=g)
        p = torch.randint(0, 3, (1, 4, 4), generator=g)
        m.update(p, t)
        both.update(p, t)
    assert torch.equal(a.merge(b).matrix, both.matrix)
    assert torch.equal(SegMetrics(3).merge(both).matrix, both.matrix)
    a.reset()
    assert a.matrix.sum() == 0
    r = SegMetrics(3).compute()
    assert math.isnan(r["mIoU"]) and math.isnan(r["OA"])
    with pytest.raises(ValueError, match="other"):
        a.merge(SegMetrics(4))


def test_sync_is_a_noop_without_process_group():
    m = SegMetrics(2)
    m.update(torch.tensor([[[0, 1]]]), torch.tensor([[[0, 1]]]))
    before = m.matrix.clone()
    assert m.sync() is m and torch.equal(m.matrix, before)


def test_sync_sums_across_processes():
    import torch.distributed as dist
    import torch.multiprocessing as mp

    if not dist.is_available():
        pytest.skip("torch.distributed is not available in this build")
    with tempfile.TemporaryDirectory() as tmp:
        from metrics_sync_worker import sync_worker

        mp.spawn(sync_worker, args=(2, os.path.join(tmp, "init"), tmp), nprocs=2)
        want = torch.tensor([[1, 0, 0], [0, 1, 1], [0, 0, 0]])
        for rank in range(2):
            assert torch.equal(torch.load(os.path.join(tmp, f"{rank}.pt")), want)


def test_errors():
    m = SegMetrics(3)
    t = torch.zeros(1, 2, 2, dtype=torch.long)
    with pytest.raises(ValueError, match="num_classes"):
        SegMetrics(0)
    with pytest.raises(ValueError, match="pred"):
        m.update(torch.zeros(1, 2, 3, dtype=torch.long), t)
    with pytest.raises(ValueError, match="num_classes"):
        m.update(torch.randn(1, 4, 2, 2), t)
    with pytest.raises(ValueError, match="target"):
        m.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.full((1, 2, 2), 3))
    with pytest.raises(ValueError, match="pred"):
        m.update(torch.full((1, 2, 2), 5), t)
    with pytest.raises(TypeError, match="pred"):
        m.update(torch.zeros(1, 2, 2), t)
    with pytest.raises(TypeError, match="target"):
        m.update(t, t.float())
