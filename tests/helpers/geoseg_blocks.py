"""Small re-statements of GeoSeg's attention blocks and conv-BN stacks, written the way
GeoSeg writes them (einsum, 1 / norm, softplus), to produce the graphs effseg's passes
and effseg.compile must recognise. Formulas from geoseg/models/ABCNet.py `Attention`
(shared by A2FPN.py and BANet.py) and MANet.py `PAM_Module`; the code is effseg's own."""
from __future__ import annotations

import torch
from torch import nn


def geoseg_l2_norm(x):
    return torch.einsum("bcn, bn->bcn", x, 1 / torch.norm(x, p=2, dim=-2))


class _Projections(nn.Module):
    def __init__(self, channels: int, scale: int = 8, eps: float = 1e-6, gamma: float = 0.5):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((1,), gamma))
        self.eps = eps
        self.query_conv = nn.Conv2d(channels, channels // scale, 1)
        self.key_conv = nn.Conv2d(channels, channels // scale, 1)
        self.value_conv = nn.Conv2d(channels, channels, 1)

    def qkv(self, x):
        b, _, h, w = x.shape
        return (self.query_conv(x).view(b, -1, w * h), self.key_conv(x).view(b, -1, w * h),
                self.value_conv(x).view(b, -1, w * h))


class TaylorAttention(_Projections):
    """ABCNet / A2-FPN / BANet `Attention`."""

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(x)
        q = geoseg_l2_norm(q).permute(-3, -1, -2)
        k = geoseg_l2_norm(k)
        tailor_sum = 1 / (w * h + torch.einsum("bnc, bc->bn", q, torch.sum(k, dim=-1) + self.eps))
        value_sum = torch.einsum("bcn->bc", v).unsqueeze(-1).expand(-1, c, w * h)
        matrix = torch.einsum("bmn, bcn->bmc", k, v)
        matrix_sum = value_sum + torch.einsum("bnm, bmc->bcn", q, matrix)
        out = torch.einsum("bcn, bn->bcn", matrix_sum, tailor_sum).view(b, c, h, w)
        return (self.gamma * out).contiguous()


class SoftplusAttention(_Projections):
    """MANet `PAM_Module`."""

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(x)
        q = torch.nn.functional.softplus(q).permute(-3, -1, -2)
        k = torch.nn.functional.softplus(k)
        kv = torch.einsum("bmn, bcn->bmc", k, v)
        norm = 1 / torch.einsum("bnc, bc->bn", q, torch.sum(k, dim=-1) + self.eps)
        out = torch.einsum("bnm, bmc, bn->bcn", q, kv, norm).view(b, c, h, w)
        return (x + self.gamma * out).contiguous()


def randomise_batchnorms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial running statistics and affine parameters, so that folding them is
    visible in the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                if m.affine:
                    m.weight.copy_(torch.randn(c, generator=g))
                    m.bias.copy_(torch.randn(c, generator=g))
    return model
