"""boundary_iou and mask_boundary on hand-made masks and against a literal numpy version of
the paper's mask_to_boundary (one-pixel zero pad, d iterations of a 3x3 erosion)."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from effseg.metrics import boundary_iou, mask_boundary
from effseg.metrics.boundary_iou import boundary_width


def _erode3(m):
    """One 3x3 erosion where outside the array counts as foreground (cv2's default)."""
    H, W = m.shape
    out = np.zeros_like(m)
    for i in range(H):
        for j in range(W):
            out[i, j] = m[max(0, i - 1):i + 2, max(0, j - 1):j + 2].all()
    return out


def _paper_boundary(mask, d):
    H, W = mask.shape
    padded = np.zeros((H + 2, W + 2), bool)
    padded[1:-1, 1:-1] = mask
    for _ in range(d):
        padded = _erode3(padded)
    return mask & ~padded[1:-1, 1:-1]


def _paper_biou(pred, target, K, ratio=0.02, ignore=255):
    d = max(1, round(ratio * math.hypot(*target.shape[-2:])))
    inter, union = np.zeros(K, np.int64), np.zeros(K, np.int64)
    for p, t in zip(pred, target):
        valid = t != ignore
        for k in range(K):
            gb = _paper_boundary((t == k) & valid, d)
            pb = _paper_boundary((p == k) & valid, d)
            inter[k] += (gb & pb).sum()
            union[k] += (gb | pb).sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter, union, np.where(union > 0, inter / np.maximum(union, 1), np.nan)


def test_band_of_a_square():
    m = torch.zeros(10, 10, dtype=torch.bool)
    m[2:8, 2:8] = True
    band = mask_boundary(m, 1)
    ring = m.clone()
    ring[3:7, 3:7] = False
    assert torch.equal(band, ring)
    band2 = mask_boundary(m, 2)
    ring[3:7, 3:7] = True
    ring[4:6, 4:6] = False
    assert torch.equal(band2, ring)
    # A mask touching the border has a boundary along it; a full image is all border band.
    full = torch.ones(5, 7, dtype=torch.bool)
    want = full.clone()
    want[1:4, 1:6] = False
    assert torch.equal(mask_boundary(full, 1), want)
    assert torch.equal(mask_boundary(full, 3), full)


@pytest.mark.parametrize("H,W", [(9, 13), (16, 16), (5, 3)])
@pytest.mark.parametrize("d", [1, 2, 4])
def test_band_matches_paper_erosion(H, W, d):
    g = torch.Generator().manual_seed(H * W + d)
    blobs = F.interpolate(torch.rand(3, 1, H // 2 + 1, W // 2 + 1, generator=g), size=(H, W)) > 0.4
    masks = blobs[:, 0]
    got = mask_boundary(masks, d)
    for i in range(3):
        assert np.array_equal(got[i].numpy(), _paper_boundary(masks[i].numpy(), d))
    # The single separable (2d+1) pool equals d repeated 3x3 erosions in torch as well.
    inv = (~masks).float().unsqueeze(1)
    for _ in range(d):
        inv = F.max_pool2d(F.pad(inv, (1, 1, 1, 1), value=1.0), 3, stride=1)
    assert torch.equal(got, masks & (inv[:, 0] > 0))


def test_boundary_iou_hand_made():
    target = torch.zeros(1, 10, 10, dtype=torch.long)
    target[0, 2:8, 2:8] = 1
    # d = round(0.02 * 14.1) = 0 -> 1: the bands are the one-pixel inner rings.
    assert boundary_width(10, 10) == 1
    r = boundary_iou(target, target, num_classes=3)
    assert r["per_class"][:2].tolist() == [1.0, 1.0] and math.isnan(r["per_class"][2])
    assert r["mean"] == 1.0
    # Prediction: the square shrunk by one pixel on the right. Class 1 bands: GT ring (20
    # pixels), predicted 6x5 ring (18 pixels); they share the left column, top and bottom
    # rows up to column 6 (6 + 2 * 4 = 14 pixels).
    pred = torch.zeros_like(target)
    pred[0, 2:8, 2:7] = 1
    r = boundary_iou(pred, target, num_classes=2)
    assert r["intersection"][1].item() == 14 and r["union"][1].item() == 20 + 18 - 14
    assert r["per_class"][1].item() == pytest.approx(14 / 24)


@pytest.mark.parametrize("ratio", [0.02, 0.1])
def test_matches_paper_version_with_ignore(ratio):
    g = torch.Generator().manual_seed(3)
    K, H, W = 4, 24, 20
    target = F.interpolate(torch.randint(0, K - 1, (2, 1, 6, 5), generator=g).float(), size=(H, W)).long()[:, 0]
    target[:, :3, :4] = 255
    logits = torch.randn(2, K, H // 4, W // 4, generator=g)
    logits = F.interpolate(logits, size=(H, W), mode="bilinear")
    r = boundary_iou(logits, target, dilation_ratio=ratio)
    inter, union, per_class = _paper_biou(logits.argmax(1).numpy(), target.numpy(), K, ratio)
    assert np.array_equal(r["intersection"].numpy(), inter)
    assert np.array_equal(r["union"].numpy(), union)
    np.testing.assert_allclose(r["per_class"].numpy(), per_class, rtol=1e-12)
    assert r["mean"] == pytest.approx(np.nanmean(per_class))
    # Ignored pixels' predictions do not matter.
    other = logits.clone()
    other[:, :, :3, :4] = torch.randn(2, K, 3, 4, generator=g) * 10
    assert torch.equal(boundary_iou(other, target, dilation_ratio=ratio)["union"], r["union"])


def test_errors():
    t = torch.zeros(1, 4, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="num_classes"):
        boundary_iou(t, t)
    with pytest.raises(ValueError, match="dilation_ratio"):
        boundary_iou(t, t, num_classes=2, dilation_ratio=-1)
    with pytest.raises(ValueError, match="pred"):
        boundary_iou(torch.zeros(4, 4, dtype=torch.long), t, num_classes=2)
