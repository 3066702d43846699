"""Distillation losses against values computed here with explicit loops."""
import math

import pytest
import torch

from effseg.losses import BoundaryKD, ChannelWiseKD, LogitKD
from effseg.losses.distill import edge_band


def _softmax(xs):
    m = max(xs)
    e = [math.exp(v - m) for v in xs]
    return [v / sum(e) for v in e]


def _kl(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q) if a > 0)


def _pixel_kl(s, t, b, y, x, tau):
    K = s.shape[1]
    p = _softmax([float(t[b, k, y, x]) / tau for k in range(K)])
    q = _softmax([float(s[b, k, y, x]) / tau for k in range(K)])
    return tau * tau * _kl(p, q)


@pytest.fixture
def logits():
    g = torch.Generator().manual_seed(3)
    s = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64)
    t = 2 * torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64)
    target = torch.randint(0, 3, (2, 4, 5), generator=g)
    target[0, 0, :3] = 255
    target[1, 2:, 1] = 255
    return s, t, target


@pytest.mark.parametrize("tau", [1.0, 2.5])
def test_logit_kd_by_hand(logits, tau):
    s, t, target = logits
    total, n = 0.0, 0
    for b in range(2):
        for y in range(4):
            for x in range(5):
                if int(target[b, y, x]) != 255:
                    total += _pixel_kl(s, t, b, y, x, tau)
                    n += 1
    got = LogitKD(tau=tau)(s, t, target)
    assert float(got) == pytest.approx(total / n, rel=1e-10)
    # without a target every pixel counts
    every = sum(_pixel_kl(s, t, b, y, x, tau) for b in range(2) for y in range(4) for x in range(5)) / 40
    assert float(LogitKD(tau=tau)(s, t)) == pytest.approx(every, rel=1e-10)


def test_logit_kd_resizes_teacher():
    s = torch.zeros(1, 2, 4, 4)
    t = torch.zeros(1, 2, 2, 2)
    t[:, 0] = 3.0  # constant per channel: bilinear resizing keeps it
    p = _softmax([3.0, 0.0])
    want = _kl(p, [0.5, 0.5])
    assert float(LogitKD()(s, t)) == pytest.approx(want, rel=1e-6)


def test_logit_kd_zero_when_equal_and_gradient_flows(logits):
    s, t, target = logits
    assert float(LogitKD()(t.clone(), t, target)) == pytest.approx(0.0, abs=1e-12)
    s = s.clone().requires_grad_()
    LogitKD()(s, t, target).backward()
    assert s.grad.abs().sum() > 0
    assert float(s.grad[0, :, 0, :3].abs().sum()) == 0.0  # ignored pixels get no gradient


@pytest.mark.parametrize("tau", [1.0, 4.0])
def test_cwd_by_hand(logits, tau):
    s, t, _ = logits
    N, K, H, W = s.shape
    total = 0.0
    for n in range(N):
        for c in range(K):
            p = _softmax([float(t[n, c, y, x]) / tau for y in range(H) for x in range(W)])
            q = _softmax([float(s[n, c, y, x]) / tau for y in range(H) for x in range(W)])
            total += _kl(p, q)
    want = tau * tau * total / (K * N)
    assert float(ChannelWiseKD(tau=tau)(s, t)) == pytest.approx(want, rel=1e-10)


def test_cwd_ignores_masked_positions(logits):
    s, t, target = logits
    N, K, H, W = s.shape
    total = 0.0
    for n in range(N):
        pos = [(y, x) for y in range(H) for x in range(W) if int(target[n, y, x]) != 255]
        for c in range(K):
            p = _softmax([float(t[n, c, y, x]) for y, x in pos])
            q = _softmax([float(s[n, c, y, x]) for y, x in pos])
            total += _kl(p, q)
    assert float(ChannelWiseKD()(s, t, target)) == pytest.approx(total / (K * N), rel=1e-10)
    all_ignored = torch.full_like(target, 255)
    v = ChannelWiseKD()(s.clone().requires_grad_(), t, all_ignored)
    assert float(v.detach()) == pytest.approx(0.0, abs=1e-9)


def _edge_by_hand(target, band):
    B, H, W = target.shape
    out = torch.zeros(B, H, W, dtype=torch.bool)
    for b in range(B):
        for y in range(H):
            for x in range(W):
                lab = int(target[b, y, x])
                if lab == 255:
                    continue
                d = min((math.hypot(y - v, x - u) for v in range(H) for u in range(W)
                         if int(target[b, v, u]) != lab), default=math.inf)
                out[b, y, x] = d <= band
    return out


def test_edge_band_by_brute_force():
    target = torch.zeros(1, 9, 10, dtype=torch.long)
    target[0, 2:7, 3:8] = 1
    target[0, 8, 0] = 255
    for band in (1, 2, 3):
        assert torch.equal(edge_band(target, 2, band), _edge_by_hand(target, band))


def test_boundary_kd_by_hand(logits):
    s, t, target = logits
    band, we, wb, tau = 1.0, 2.0, 0.5, 2.0
    edge = _edge_by_hand(target, band)
    e_sum = e_n = b_sum = b_n = 0
    for b in range(2):
        for y in range(4):
            for x in range(5):
                if int(target[b, y, x]) == 255:
                    continue
                v = _pixel_kl(s, t, b, y, x, tau)
                if edge[b, y, x]:
                    e_sum, e_n = e_sum + v, e_n + 1
                else:
                    b_sum, b_n = b_sum + v, b_n + 1
    assert e_n > 0 and b_n > 0
    want = we * e_sum / e_n + wb * b_sum / b_n
    got = BoundaryKD(band=band, edge_weight=we, body_weight=wb, tau=tau)(s, t, target)
    assert float(got) == pytest.approx(want, rel=1e-10)


def test_bad_arguments():
    with pytest.raises(ValueError, match="tau"):
        LogitKD(tau=0)
    with pytest.raises(ValueError, match="band"):
        BoundaryKD(band=0)
    with pytest.raises(ValueError, match="target is required"):
        BoundaryKD()(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 3), None)
    with pytest.raises(ValueError, match="agree in batch and classes"):
        LogitKD()(torch.zeros(1, 2, 3, 3), torch.zeros(1, 3, 3, 3))
