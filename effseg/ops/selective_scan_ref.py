"""Readable reference of the Mamba S6 selective scan (Gu & Dao 2023, Algorithm 2).

This sequential loop is the definition of truth that every backend, test and
benchmark compares against. It is slow by design: one Python step per time step.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ._bc import per_channel


def compute_dtype(u: torch.Tensor) -> torch.dtype:
    """fp32 state whatever the input dtype; fp64 stays fp64 so gradcheck works."""
    return torch.float64 if u.dtype == torch.float64 else torch.float32


def discretised_dt(delta, delta_bias, delta_softplus, cd):
    dt = delta.to(cd)
    if delta_bias is not None:
        dt = dt + delta_bias.to(cd)[:, None]
    if delta_softplus:
        # F.softplus's default threshold=20 returns x above 20, as mamba_ssm does.
        dt = F.softplus(dt)
    return dt


def prepare(u, delta, A, B, C, delta_bias, delta_softplus, initial_state):
    """fp32 (or fp64) operands shared by the tensor-op forms: u, dt, A, per-channel B/C, h0."""
    cd = compute_dtype(u)
    bt, dm, _ = u.shape
    h0 = initial_state.to(cd) if initial_state is not None else u.new_zeros(bt, dm, A.shape[1], dtype=cd)
    return (u.to(cd), discretised_dt(delta, delta_bias, delta_softplus, cd), A.to(cd),
            per_channel(B.to(cd), dm), per_channel(C.to(cd), dm), h0)


def finish(y, uc, D, z, out_dtype):
    """Skip connection D*u and the silu(z) gate, then the input dtype."""
    if D is not None:
        y = y + D.to(y.dtype)[:, None] * uc
    if z is not None:
        y = y * F.silu(z.to(y.dtype))
    return y.to(out_dtype)


def selective_scan_ref(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: Optional[torch.Tensor] = None,
    z: Optional[torch.Tensor] = None,
    delta_bias: Optional[torch.Tensor] = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
    *,
    initial_state: Optional[torch.Tensor] = None,
):
    """h_t = exp(dt_t A) h_{t-1} + dt_t B_t u_t;  y_t = C_t . h_t + D u_t;  y *= silu(z).

    Shapes: u, delta, z (B, D, L); A (D, N); B, C (D, N) | (B, N, L) | (B, G, N, L);
    D, delta_bias (D,); initial_state (B, D, N). Returns y in u's dtype, and the last
    state (B, D, N) in the fp32 compute dtype when return_last_state.
    """
    uc, dt, Ac, Bc, Cc, h = prepare(u, delta, A, B, C, delta_bias, delta_softplus, initial_state)
    # decay[b, d, n, t] = exp(dt A), drive[b, d, n, t] = dt B u
    decay = torch.exp(dt.unsqueeze(2) * Ac.unsqueeze(-1))
    drive = (dt * uc).unsqueeze(2) * Bc
    # unbind, not indexing: the backward of one unbind is one stack, while indexing
    # step by step would scatter into a full-size zero gradient at every step (O(L^2)).
    c_steps = Cc.unbind(-1) if Cc.shape[-1] > 1 else [Cc[..., 0]] * u.shape[-1]
    ys = []
    for a_t, b_t, c_t in zip(decay.unbind(-1), drive.unbind(-1), c_steps):
        h = a_t * h + b_t
        ys.append((h * c_t).sum(-1))
    y = finish(torch.stack(ys, dim=-1), uc, D, z, u.dtype)
    return (y, h) if return_last_state else y
