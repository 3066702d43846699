"""Mamba, the selective state-space (S6) block of Gu & Dao, "Mamba: Linear-Time Sequence
Modeling with Selective State Spaces", 2023, on effseg's selective scan.

Parameter names and shapes follow mamba_ssm's `Mamba` module (in_proj, conv1d, x_proj,
dt_proj, A_log, D, out_proj), so its state dicts load as they are:

    x, z  = in_proj(h).chunk(2)                  (B, L, 2 * d_inner), no bias
    x     = silu(causal depthwise conv1d(x))     kernel d_conv, left padding d_conv - 1
    dt, B, C = x_proj(x).split(dt_rank, d_state, d_state)
    dt    = dt_proj.weight @ dt                  the bias enters the scan as delta_bias
    y     = selective_scan(x, dt, -exp(A_log), B, C, D, z,
                           delta_bias=dt_proj.bias, delta_softplus=True)
    out   = out_proj(y)
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ops import _validate as V
from ..ops.selective_scan import BACKENDS, selective_scan
from ..ops.selective_scan_ref import compute_dtype
from .ss2d import _dt_bias


class Mamba(nn.Module):
    """(B, L, d_model) -> (B, L, d_model), causal along L.

    d_inner = expand * d_model; dt_rank "auto" = ceil(d_model / 16). Initialisation as in
    the paper: A = -(1..d_state) per channel (S4D-real, stored as A_log), D = 1, dt_proj's
    weight uniform in +-dt_rank^-0.5 * dt_scale ("random") or that constant ("constant"),
    and its bias softplus^-1(dt) with dt log-uniform in [dt_min, dt_max] (floored at
    dt_init_floor). backend: the selective-scan backend ("auto": C++ on CPU, Triton on
    CUDA; "ref": the sequential reference).
    """

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: float = 2,
                 dt_rank="auto", dt_min: float = 0.001, dt_max: float = 0.1,
                 dt_init: str = "random", dt_scale: float = 1.0, dt_init_floor: float = 1e-4,
                 conv_bias: bool = True, bias: bool = False, backend: str = "auto"):
        super().__init__()
        for name, v in (("d_model", d_model), ("d_state", d_state), ("d_conv", d_conv)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        if not expand > 0 or int(expand * d_model) < 1:
            raise ValueError(f"expand must make d_inner = int(expand * d_model) >= 1, got "
                             f"expand={expand!r} with d_model={d_model}")
        if dt_rank != "auto" and (isinstance(dt_rank, bool) or not isinstance(dt_rank, int)
                                  or dt_rank < 1):
            raise ValueError(f"dt_rank must be 'auto' or an int >= 1, got {dt_rank!r}")
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"dt_min and dt_max must satisfy 0 < dt_min <= dt_max, got "
                             f"dt_min={dt_min!r}, dt_max={dt_max!r}")
        V.choice("dt_init", dt_init, ("random", "constant"))
        V.choice("backend", backend, BACKENDS)
        self.d_model, self.d_state, self.d_conv, self.expand = d_model, d_state, d_conv, expand
        self.d_inner = d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else dt_rank
        self.backend = backend

        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=bias)
        self.conv1d = nn.Conv1d(d_inner, d_inner, d_conv, groups=d_inner, padding=d_conv - 1,
                                bias=conv_bias)
        self.act = nn.SiLU()
        self.x_proj = nn.Linear(d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, d_inner, bias=True)
        # Keeps the variance of dt_proj's output at init independent of dt_rank.
        std = self.dt_rank ** -0.5 * dt_scale
        with torch.no_grad():
            if dt_init == "constant":
                self.dt_proj.weight.fill_(std)
            else:
                self.dt_proj.weight.uniform_(-std, std)
            self.dt_proj.bias.copy_(_dt_bias(d_inner, dt_min, dt_max, dt_init_floor))
        a = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(d_inner, 1)
        self.A_log = nn.Parameter(torch.log(a))
        self.D = nn.Parameter(torch.ones(d_inner))
        self.out_proj = nn.Linear(d_inner, d_model, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a Tensor, got {type(x).__name__}")
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must be (B, L, d_model={self.d_model}), got {tuple(x.shape)}")
        length = x.shape[1]
        xz = self.in_proj(x).transpose(1, 2)                       # (B, 2 * d_inner, L)
        u, z = xz.chunk(2, dim=1)
        # Padding d_conv - 1 on both sides and keeping the first L outputs = causal conv.
        u = self.act(self.conv1d(u)[..., :length])
        x_dbl = self.x_proj(u.transpose(1, 2))                     # (B, L, R + 2N)
        dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.linear(dt, self.dt_proj.weight).transpose(1, 2)     # (B, d_inner, L)
        # A, D and the dt bias in the scan's fp32 state dtype (fp64 stays fp64), as
        # mamba_ssm keeps them fp32 under half-precision activations.
        cd = compute_dtype(u)
        y = selective_scan(u, dt, -torch.exp(self.A_log.to(cd)),
                           B.transpose(1, 2), C.transpose(1, 2), self.D.to(cd), z,
                           self.dt_proj.bias.to(cd), True, backend=self.backend)
        return self.out_proj(y.transpose(1, 2))

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, d_state={self.d_state}, d_conv={self.d_conv}, "
                f"expand={self.expand}, dt_rank={self.dt_rank}, backend={self.backend!r}")
