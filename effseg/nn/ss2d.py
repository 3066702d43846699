"""SS2D, VMamba's 2-D selective-scan block (the decoder block of CM-UNet, RS3Mamba and
PyramidMamba-style nets), on effseg's scan.

Parameter names and shapes follow VMamba's SS2D (in_proj, conv2d, x_proj_weight,
dt_projs_weight, dt_projs_bias, A_logs, Ds, out_norm, out_proj), so its state dicts
load. Input and output are channels-last (B, H, W, C), as in VMamba.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ops.cross_selective_scan import K_DIRECTIONS, cross_merge_ref, cross_scan_ref, cross_selective_scan
from ..ops.selective_scan import selective_scan


def _dt_bias(d_inner: int, dt_min: float, dt_max: float, floor: float) -> Tensor:
    # Mamba's init: dt log-uniform in [dt_min, dt_max], bias = softplus^-1(dt).
    dt = torch.exp(torch.rand(d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
    dt = dt.clamp(min=floor)
    return dt + torch.log(-torch.expm1(-dt))


class SS2D(nn.Module):
    """in_proj -> depthwise conv -> SiLU -> four directional selective scans (G = 4) ->
    merge -> LayerNorm -> gate by SiLU(z) -> out_proj.

    d_model: channels in and out; d_inner = expand * d_model; dt_rank "auto" =
    ceil(d_model / 16). backend: the scan backend ("auto" picks the fused C++ cross scan
    on CPU for inference, the grouped selective_scan otherwise).
    """

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 3, expand: float = 2.0,
                 dt_rank="auto", dt_min: float = 0.001, dt_max: float = 0.1,
                 dt_init_floor: float = 1e-4, dt_scale: float = 1.0, conv_bias: bool = True,
                 bias: bool = False, dropout: float = 0.0, backend: str = "auto"):
        super().__init__()
        if d_model < 1 or d_state < 1 or d_conv < 1 or expand <= 0:
            raise ValueError(f"SS2D needs d_model, d_state, d_conv >= 1 and expand > 0, got "
                             f"{d_model}, {d_state}, {d_conv}, {expand}")
        self.d_model, self.d_state = d_model, d_state
        self.d_inner = d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.backend = backend
        K = K_DIRECTIONS
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=bias)
        self.conv2d = nn.Conv2d(d_inner, d_inner, d_conv, padding=(d_conv - 1) // 2,
                                groups=d_inner, bias=conv_bias)
        self.act = nn.SiLU()
        x_proj = [nn.Linear(d_inner, self.dt_rank + 2 * d_state, bias=False) for _ in range(K)]
        self.x_proj_weight = nn.Parameter(torch.stack([p.weight for p in x_proj]))
        std = self.dt_rank ** -0.5 * dt_scale
        self.dt_projs_weight = nn.Parameter(torch.empty(K, d_inner, self.dt_rank).uniform_(-std, std))
        self.dt_projs_bias = nn.Parameter(
            torch.stack([_dt_bias(d_inner, dt_min, dt_max, dt_init_floor) for _ in range(K)]))
        a = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(K * d_inner, 1)
        self.A_logs = nn.Parameter(torch.log(a))
        self.Ds = nn.Parameter(torch.ones(K * d_inner))
        self.out_norm = nn.LayerNorm(d_inner)
        self.out_proj = nn.Linear(d_inner, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def _projections(self, x: Tensor):
        """delta (B, 4*D, L), B and C (B, 4, N, L) from x (B, D, L), all in row-major
        order: the projections act per position, so they commute with the scan orders."""
        b, d, L = x.shape
        R, N = self.dt_rank, self.d_state
        x_dbl = torch.matmul(self.x_proj_weight, x.unsqueeze(1))  # (B, 4, R + 2N, L)
        dts, Bs, Cs = torch.split(x_dbl, [R, N, N], dim=2)
        dts = torch.matmul(self.dt_projs_weight, dts)  # (B, 4, D, L)
        return dts.reshape(b, K_DIRECTIONS * d, L), Bs, Cs

    def forward_core(self, x: Tensor) -> Tensor:
        """(B, D, H, W) after the conv -> (B, D, H*W), the four scans merged."""
        b, d, H, W = x.shape
        xl = x.reshape(b, d, H * W)
        dts, Bs, Cs = self._projections(xl)
        As = -torch.exp(self.A_logs.float())
        return cross_selective_scan(xl, dts, As, Bs, Cs, self.Ds.float(),
                                    self.dt_projs_bias.float().reshape(-1), True, H=H, W=W,
                                    backend=self.backend)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[-1] != self.d_model:
            raise ValueError(f"SS2D input must be (B, H, W, C={self.d_model}) channels-last, "
                             f"got {tuple(x.shape)}")
        b, H, W, _ = x.shape
        x, z = self.in_proj(x).chunk(2, dim=-1)
        x = self.act(self.conv2d(x.permute(0, 3, 1, 2).contiguous()))
        y = self.forward_core(x).to(x.dtype)
        y = y.transpose(1, 2).reshape(b, H, W, self.d_inner)
        y = self.out_norm(y) * F.silu(z)
        return self.dropout(self.out_proj(y))


def ss2d_core_composed(m: SS2D, x: Tensor, backend: Optional[str] = "ref") -> Tensor:
    """SS2D.forward_core written as VMamba writes it (four copies, einsum projections on the
    copies, one grouped scan, merge): the plain composition tests and benchmarks compare to."""
    b, d, H, W = x.shape
    L = H * W
    K, R, N = K_DIRECTIONS, m.dt_rank, m.d_state
    xs = cross_scan_ref(x)  # (B, 4, D, L)
    x_dbl = torch.einsum("bkdl,kcd->bkcl", xs, m.x_proj_weight)
    dts, Bs, Cs = torch.split(x_dbl, [R, N, N], dim=2)
    dts = torch.einsum("bkrl,kdr->bkdl", dts, m.dt_projs_weight)
    ys = selective_scan(xs.reshape(b, K * d, L), dts.reshape(b, K * d, L),
                        -torch.exp(m.A_logs.float()), Bs, Cs, m.Ds.float(), None,
                        m.dt_projs_bias.float().reshape(-1), True, backend=backend)
    return cross_merge_ref(ys.reshape(b, K, d, L), H, W)
