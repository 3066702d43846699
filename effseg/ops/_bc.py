"""Shared handling of the three forms of the selective scan's B and C inputs.

mamba_ssm accepts B/C as constant (D, N), time-varying (B, N, L) or grouped
(B, G, N, L) where channel d reads group d // (D // G). Every backend works on one
canonical 4-D view (batch, group, N, L) whose batch/time strides may be zero.
"""
from __future__ import annotations

import torch


def groups_of(x: torch.Tensor, dm: int) -> int:
    """Number of channel groups a B/C tensor carries."""
    if x.dim() == 2:
        return dm
    if x.dim() == 3:
        return 1
    return x.shape[1]


def as_grouped(x: torch.Tensor, bt: int, dm: int, length: int) -> torch.Tensor:
    """(Bt, G, N, L) view of a B/C tensor; constant B/C gets zero batch/time strides."""
    if x.dim() == 2:
        return x.view(1, dm, x.shape[1], 1).expand(bt, dm, x.shape[1], length)
    if x.dim() == 3:
        return x.unsqueeze(1)
    return x


def per_channel(x: torch.Tensor, dm: int) -> torch.Tensor:
    """Broadcastable per-channel view: (D, N, 1) for constant, else (B, D, N, L).

    Only the readable reference and the chunked form use this: it materialises the
    group -> channel expansion, which the kernels avoid.
    """
    if x.dim() == 2:
        return x.unsqueeze(-1)
    if x.dim() == 3:
        return x.unsqueeze(1)
    return x.repeat_interleave(dm // x.shape[1], dim=1)


def grad_buffer(x: torch.Tensor, bt: int, dm: int, length: int, dtype: torch.dtype):
    """Zeroed gradient buffer shaped like x and its (Bt, G, N, L) accumulation view."""
    buf = torch.zeros(x.shape, dtype=dtype, device=x.device)
    return buf, as_grouped(buf, bt, dm, length)
