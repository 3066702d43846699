"""The losses and metrics on CUDA give the CPU's values (run on the GPU machine)."""
import pytest
import torch

from effseg.losses import (
    BoundaryLoss,
    CrossEntropyLoss,
    DiceLoss,
    DistanceLoss,
    FocalLoss,
    HausdorffDTLoss,
)
from effseg.metrics import SegMetrics, boundary_iou

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.parametrize("cls", [DistanceLoss, BoundaryLoss, HausdorffDTLoss, CrossEntropyLoss, DiceLoss, FocalLoss])
def test_cuda_matches_cpu(cls):
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 4, (2, 8, 8), generator=g).repeat_interleave(4, 1).repeat_interleave(4, 2)
    target[:, :3, :5] = 255
    logits = torch.randn(2, 5, 32, 32, generator=g, dtype=torch.float64)
    outs = []
    for dev in ("cpu", "cuda"):
        x = logits.to(dev).requires_grad_(True)
        v = cls()(x, target.to(dev))
        v.backward()
        outs.append((v.detach().cpu(), x.grad.cpu()))
    torch.testing.assert_close(outs[1][0], outs[0][0], rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(outs[1][1], outs[0][1], rtol=1e-6, atol=1e-9)


def test_metrics_on_cuda():
    g = torch.Generator().manual_seed(1)
    target = torch.randint(0, 4, (2, 16, 16), generator=g)
    logits = torch.randn(2, 4, 16, 16, generator=g)
    cpu, gpu = SegMetrics(4), SegMetrics(4)
    cpu.update(logits, target)
    gpu.update(logits.cuda(), target.cuda())
    assert gpu.matrix.device.type == "cuda"
    assert torch.equal(gpu.matrix.cpu(), cpu.matrix)
    a, b = boundary_iou(logits, target), boundary_iou(logits.cuda(), target.cuda())
    assert torch.equal(a["union"], b["union"]) and torch.equal(a["intersection"], b["intersection"])
