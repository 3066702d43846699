"""The training objective: `--loss` names, auxiliary heads, distillation from a teacher."""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from ..data import IGNORE
from ..losses import (
    BoundaryKD,
    BoundaryLoss,
    ChannelWiseKD,
    CrossEntropyLoss,
    DiceLoss,
    DistanceLoss,
    JointLoss,
    LogitKD,
    Rebalance,
)

# GeoSeg's UNetFormer/ABCNet losses weigh each auxiliary head's CE by 0.4.
AUX_WEIGHT = 0.4


class Timed(nn.Module):
    """Runs `loss` and adds the time it took (perf_counter, CUDA synchronised so the
    kernels are counted, not their launch) to `seconds`."""

    def __init__(self, loss: nn.Module):
        super().__init__()
        self.loss = loss
        self.seconds = 0.0

    def forward(self, logits, target):
        sync = logits.is_cuda
        if sync:
            torch.cuda.synchronize(logits.device)
        t0 = time.perf_counter()
        out = self.loss(logits, target)
        if sync:
            torch.cuda.synchronize(logits.device)
        self.seconds += time.perf_counter() - t0
        return out


def build_loss(name: str) -> tuple[JointLoss, Timed | None]:
    """(the loss, the timer around its distance term when it has one)."""
    ce = CrossEntropyLoss(ignore_index=IGNORE)
    if name == "ce":
        return JointLoss([ce]), None
    if name == "ce+dice":
        return JointLoss([ce, DiceLoss(ignore_index=IGNORE)]), None
    if name == "ce+distance":
        timed = Timed(DistanceLoss(ignore_index=IGNORE))
        return JointLoss([ce, timed]), timed
    if name == "ce+boundary":
        # Kervadec et al.: the boundary term's share grows by 0.01 per epoch.
        timed = Timed(BoundaryLoss(ignore_index=IGNORE))
        return JointLoss([ce, timed], schedule=Rebalance()), timed
    raise ValueError(f"--loss: unknown loss {name!r}")


def split_outputs(out) -> tuple[torch.Tensor, list[torch.Tensor]]:
    if isinstance(out, (tuple, list)):
        return out[0], list(out[1:])
    return out, []


def aux_loss(aux: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor | None:
    total = None
    for a in aux:
        if a.dim() != 4:
            continue
        if a.shape[-2:] != target.shape[-2:]:
            a = F.interpolate(a, size=target.shape[-2:], mode="bilinear", align_corners=False)
        term = F.cross_entropy(a.float(), target, ignore_index=IGNORE)
        total = term if total is None else total + term
    return None if total is None else AUX_WEIGHT * total


def build_kd(kind: str, tau: float, band: float, edge_weight: float = 1.0, body_weight: float = 1.0) -> nn.Module:
    if kind == "logit":
        return LogitKD(tau=tau, ignore_index=IGNORE)
    if kind == "cwd":
        return ChannelWiseKD(tau=tau, ignore_index=IGNORE)
    if kind == "boundary":
        return BoundaryKD(band=band, edge_weight=edge_weight, body_weight=body_weight, tau=tau, ignore_index=IGNORE)
    raise ValueError(f"--kd: unknown kind {kind!r}")


class Teacher:
    """A trained model from an `effseg train` checkpoint, frozen: eval mode, run under
    torch.inference_mode, its logits at the student's resolution. Inputs come normalised
    with the student's statistics and are re-normalised to the teacher's when they differ."""

    def __init__(self, path: str, num_classes: int, stats: dict, device, compile: bool = False):
        from ..models.spec import build_model
        from .checkpoint import net_state, read_checkpoint

        ckpt = read_checkpoint(path)
        meta = ckpt["effseg"]
        if int(meta["num_classes"]) != num_classes:
            raise ValueError(f"--teacher {path!r} predicts {meta['num_classes']} classes, the data has {num_classes}")
        if int(meta["in_channels"]) != len(stats["mean"]):
            raise ValueError(f"--teacher {path!r} takes {meta['in_channels']} bands, the data has "
                             f"{len(stats['mean'])}")
        self.model = build_model(meta["architecture"], num_classes, int(meta["in_channels"]))
        self.model.load_state_dict(net_state(ckpt))
        self.model.to(device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.architecture = meta["architecture"]
        mine, theirs = stats, meta["normalize"]
        self.renorm = None
        if list(mine["mean"]) != list(theirs["mean"]) or list(mine["std"]) != list(theirs["std"]):
            t = lambda v: torch.tensor(v, dtype=torch.float32, device=device).view(1, -1, 1, 1)  # noqa: E731
            # x_teacher = (raw - m_t) / s_t with raw = x * s + m.
            self.renorm = (t(mine["std"]) / t(theirs["std"]), (t(mine["mean"]) - t(theirs["mean"])) / t(theirs["std"]))
        self.compile = compile
        self._run = self.model

    def __call__(self, x: torch.Tensor, size) -> torch.Tensor:
        with torch.inference_mode():
            if self.renorm is not None:
                x = x * self.renorm[0] + self.renorm[1]
            if self.compile and self._run is self.model:
                from ..compile import compile as effseg_compile

                self._run = effseg_compile(self.model, example_input=x, device=x.device)
            out, _ = split_outputs(self._run(x))
            if tuple(out.shape[-2:]) != tuple(size):
                out = F.interpolate(out.float(), size=size, mode="bilinear", align_corners=False)
        # Outside inference mode: a normal tensor the student's loss may save for backward.
        return out.clone()
