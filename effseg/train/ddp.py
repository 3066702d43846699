"""torch.distributed for `torchrun`: one process per device, rank 0 writes the files.

torchrun sets WORLD_SIZE, RANK and LOCAL_RANK; without them (or with WORLD_SIZE 1) the
run is a single process and every helper here is a no-op.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owned: bool = False  # this module initialised the process group (and destroys it)

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_mean(self, value: float) -> float:
        if not self.enabled:
            return float(value)
        t = torch.tensor([float(value)], dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(t)
        return float(t.item()) / self.world

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return t
        out = t.to(self._comm_device()).clone()
        dist.all_reduce(out)
        return out.to(t.device)

    def broadcast_object(self, obj):
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.owned and dist.is_initialized():
            dist.destroy_process_group()

    def _comm_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")


def pick_device(pref: str, local_rank: int = 0) -> torch.device:
    if pref == "auto":
        pref = "cuda" if torch.cuda.is_available() else "cpu"
    if pref.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"--device {pref}: CUDA is not available here; use --device cpu")
        return torch.device(pref if ":" in pref else f"cuda:{local_rank}")
    if pref != "cpu":
        raise ValueError(f"--device must be auto, cpu or cuda[:N], got {pref!r}")
    return torch.device("cpu")


def setup(device: str = "auto") -> Dist:
    """Join the torchrun job when the environment names one (nccl on CUDA, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local_rank)
    if world <= 1:
        return Dist(device=dev)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", rank=rank, world_size=world)
    return Dist(rank=rank, world=world, local_rank=local_rank, device=dev, owned=owned)
