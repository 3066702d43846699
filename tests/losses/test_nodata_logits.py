"""Non-finite logits at ignored pixels (nodata: the image had no data there) change no loss:
same value as with any finite logits there, finite gradients, zero at those pixels. Before,
focal/boundary/Hausdorff/distance losses returned NaN, every gradient was NaN (CE's too)
and Dice silently returned 1."""
import pytest
import torch

from effseg.losses import BoundaryLoss, CrossEntropyLoss, DiceLoss, DistanceLoss, FocalLoss, HausdorffDTLoss, JointLoss

LOSSES = {
    "ce": lambda: CrossEntropyLoss(),
    "ce_weight_smoothing": lambda: CrossEntropyLoss(weight=[1, 2, 3, 4], label_smoothing=0.1),
    "dice": lambda: DiceLoss(),
    "focal": lambda: FocalLoss(alpha=[1, 1, 2, 2]),
    "boundary": lambda: BoundaryLoss(),
    "hausdorff": lambda: HausdorffDTLoss(),
    "distance": lambda: DistanceLoss(),
    "joint": lambda: JointLoss([CrossEntropyLoss(), DiceLoss()]),
}


def _case(dtype):
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 4, (2, 12, 10), generator=g)
    target[:, :3] = 255  # a nodata strip
    target[1, 7, 2:5] = 255
    clean = torch.randn(2, 4, 12, 10, generator=g).to(dtype)
    dirty = clean.clone()
    ignored = (target == 255).unsqueeze(1).expand_as(dirty)
    noise = torch.randn(dirty.shape, generator=g).to(dtype) * 50
    dirty[ignored] = noise[ignored]  # other finite values where the target is ignored...
    nodata = dirty.clone()
    nodata[:, :, :3] = float("nan")  # ...and non-finite ones
    nodata[1, 2, 7, 2] = float("inf")
    nodata[1, 0, 7, 3] = float("-inf")
    return clean, dirty, nodata, ignored, target


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_ignored_pixels_logits_do_not_matter(name, dtype):
    clean, dirty, nodata, ignored, target = _case(dtype)
    values, grads = [], []
    for x in (clean, dirty, nodata):
        x = x.clone().requires_grad_(True)
        v = LOSSES[name]()(x, target)
        v.backward()
        values.append(v.detach().float())
        grads.append(x.grad)
    assert torch.isfinite(values[2]).all(), values
    torch.testing.assert_close(values[1], values[0])
    torch.testing.assert_close(values[2], values[0])
    for gr in grads:
        assert torch.isfinite(gr).all()
        assert (gr[ignored] == 0).all()
    torch.testing.assert_close(grads[2], grads[0])


def test_nonfinite_logits_at_valid_pixels_still_show():
    nodata = _case(torch.float32)[2]
    target = torch.zeros(2, 12, 10, dtype=torch.long)  # nothing ignored
    assert torch.isnan(FocalLoss()(nodata, target))
