"""Label helpers shared by the losses and the metrics (a leaf: imports torch only)."""
from __future__ import annotations

import torch


def argmax_channels(x: torch.Tensor) -> torch.Tensor:
    """x.argmax(dim=1), first maximum on ties. On the CPU, max(dim=1).indices (documented
    to return the first maximal index as well) was measured ~8x faster than argmax over
    the strided channel dim."""
    return x.max(dim=1).indices
