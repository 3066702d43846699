"""The GeoSeg family's global linear-attention blocks on effseg's linear_attention op.

One module covers the variants; parameter names and shapes follow GeoSeg (query_conv,
key_conv, value_conv: 1x1 Conv2d with bias; gamma: (1,), initialised to 0), so their
state dicts load as they are:

    MANet `PAM_Module`           kind="softplus", residual=True   (x + gamma * out)
    ABCNet / A2-FPN `Attention`  kind="taylor",   residual=False  (gamma * out)
    BANet `LinearAttention`      kind="taylor",   residual=True
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..ops import _validate as V
from ..ops.linear_attention import BACKENDS, linear_attention
from ..ops.linear_attention_ref import KINDS


class LinearAttention(nn.Module):
    """x (B, C, H, W) -> (B, C, H, W): q, k = 1x1 convs to C // scale channels, v = 1x1
    conv to C, out = linear_attention(q, k, v) over the H*W positions, then gamma * out
    (plus x when residual). gamma starts at 0, so the block starts as 0 or as identity.

    backend: passed to effseg.ops.linear_attention ("auto": C++ on CPU, Triton on CUDA).
    """

    def __init__(self, in_places: int, scale: int = 8, eps: float = 1e-6, *,
                 kind: str = "taylor", residual: bool = False, backend: str = "auto"):
        super().__init__()
        V.choice("kind", kind, KINDS)
        V.choice("backend", backend, BACKENDS)
        if in_places < 1 or scale < 1 or in_places // scale < 1:
            raise ValueError(f"in_places // scale must be >= 1 (the q/k channel count), got "
                             f"in_places={in_places}, scale={scale}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.in_places, self.eps = in_places, float(eps)
        self.kind, self.residual, self.backend = kind, bool(residual), backend
        self.gamma = nn.Parameter(torch.zeros(1))
        self.query_conv = nn.Conv2d(in_places, in_places // scale, kernel_size=1)
        self.key_conv = nn.Conv2d(in_places, in_places // scale, kernel_size=1)
        self.value_conv = nn.Conv2d(in_places, in_places, kernel_size=1)

    @classmethod
    def manet_pam(cls, in_places: int, **kw) -> LinearAttention:
        """MANet's PAM_Module: softplus kernel attention, x + gamma * out."""
        return cls(in_places, kind="softplus", residual=True, **kw)

    @classmethod
    def abcnet(cls, in_places: int, **kw) -> LinearAttention:
        """ABCNet's / A2-FPN's Attention: Taylor attention, gamma * out."""
        return cls(in_places, kind="taylor", residual=False, **kw)

    @classmethod
    def banet(cls, in_places: int, **kw) -> LinearAttention:
        """BANet's LinearAttention: Taylor attention, x + gamma * out."""
        return cls(in_places, kind="taylor", residual=True, **kw)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_places:
            raise ValueError(f"x must be (B, C={self.in_places}, H, W), got {tuple(x.shape)}")
        b, c, h, w = x.shape
        q = self.query_conv(x).reshape(b, -1, h * w)
        k = self.key_conv(x).reshape(b, -1, h * w)
        v = self.value_conv(x).reshape(b, c, h * w)
        out = linear_attention(q, k, v, kind=self.kind, eps=self.eps, backend=self.backend)
        out = self.gamma * out.reshape(b, c, h, w)
        return x + out if self.residual else out

    def extra_repr(self) -> str:
        return (f"in_places={self.in_places}, kind={self.kind!r}, residual={self.residual}, "
                f"eps={self.eps}, backend={self.backend!r}")
