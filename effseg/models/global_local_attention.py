"""UNetFormer's Global-Local Transformer Block (Wang et al., ISPRS J. 2022, Sec. 3.2).

Global branch: multi-head self-attention inside non-overlapping ws x ws windows with a
Swin-style relative position bias (Liu et al., ICCV 2021), followed by GeoSeg's
"cross-shaped" context: average pools of ws x 1 and 1 x ws over the attention map.
Local branch: 3x3 and 1x1 conv + BN. Their sum goes through a ws x ws separable conv.
Parameter names and shapes follow GeoSeg (geoseg/models/UNetFormer.py), so its
checkpoints load as they are.

Which convolutions the block is built from comes from a "conv set" (see
unetformer_decoder.ConvSet): GeoSeg's conv + BN blocks for UNetFormer, depthwise-
separable effseg blocks for the distillation student.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def reflect_pad_end(x: Tensor, dim: int, pad: int) -> Tensor:
    """Reflect-pad the end (bottom / right) of spatial dim 2 or 3 by `pad`.

    While pad < size this is exactly F.pad(mode="reflect"), what GeoSeg calls. GeoSeg
    cannot pad further (F.pad refuses pad >= size, e.g. a 2x2 map to an 8x8 window);
    there the reflection continues periodically (numpy's "reflect"; a size-1 dim
    repeats), so small inputs still run and the padded values stay mirror images.
    """
    n = x.shape[dim]
    if isinstance(n, int) and isinstance(pad, int):
        if pad == 0:
            return x
        if pad < n:
            return F.pad(x, (0, pad, 0, 0) if dim == 3 else (0, 0, 0, pad), mode="reflect")
    # One index form for every case, so a dynamic-shape export does not bake in which
    # case held at trace time (it equals F.pad's reflect while pad < n). The period is a
    # tensor: torch.onnx cannot translate `tensor % SymInt`.
    idx = torch.arange(n + pad, device=x.device)
    period = idx.new_full((), max(2 * (n - 1), 1))
    idx = idx % period
    idx = torch.where(idx < n, idx, period - idx)
    return x.index_select(dim, idx)


def relative_position_index(ws: int) -> Tensor:
    """(ws*ws, ws*ws) index into the (2ws-1)^2-row bias table for every pair of tokens of
    a window (Swin's construction; GeoSeg stores it as a buffer in its checkpoints)."""
    coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij"))
    coords = coords.flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (ws - 1)
    return rel[:, :, 0] * (2 * ws - 1) + rel[:, :, 1]


class GlobalLocalAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, window_size: int, convs, qkv_bias: bool = False):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        if window_size < 2 or window_size % 2:
            raise ValueError(f"window_size must be an even int >= 2, got {window_size!r}")
        self.num_heads, self.ws = num_heads, window_size
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = convs.conv(dim, 3 * dim, 1, bias=qkv_bias)
        self.local1 = convs.conv_bn(dim, dim, 3)
        self.local2 = convs.conv_bn(dim, dim, 1)
        self.proj = convs.sep_conv_bn(dim, dim, window_size)
        # Even ws: ws-tall pools over (H + 1) rows padded by ws/2 - 1 give H rows again.
        self.attn_x = nn.AvgPool2d((window_size, 1), stride=1, padding=(window_size // 2 - 1, 0))
        self.attn_y = nn.AvgPool2d((1, window_size), stride=1, padding=(0, window_size // 2 - 1))
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window_size))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def _window_attention(self, x: Tensor) -> Tensor:
        b, c, hp, wp = x.shape
        ws, heads = self.ws, self.num_heads
        d, nh, nw = c // heads, hp // ws, wp // ws
        # Channels are (q|k|v, head, d); windows become batch entries, their ws*ws pixels
        # (row-major) the tokens.
        qkv = self.qkv(x).reshape(b, 3, heads, d, nh, ws, nw, ws)
        q, k, v = qkv.permute(1, 0, 4, 6, 2, 5, 7, 3).reshape(3, b * nh * nw, heads, ws * ws, d)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(ws * ws, ws * ws, heads).permute(2, 0, 1).unsqueeze(0)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
        out = out.reshape(b, nh, nw, heads, ws, ws, d).permute(0, 3, 6, 1, 4, 2, 5)
        return out.reshape(b, c, hp, wp)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        local = self.local2(x) + self.local1(x)
        ws = self.ws
        # Padded pixels take part in the attention as keys, as in GeoSeg.
        xp = reflect_pad_end(reflect_pad_end(x, 3, (-w) % ws), 2, (-h) % ws)
        attn = self._window_attention(xp)[:, :, :h, :w]
        out = (self.attn_x(reflect_pad_end(attn, 2, 1))
               + self.attn_y(reflect_pad_end(attn, 3, 1)))
        out = out + local
        out = self.proj(reflect_pad_end(reflect_pad_end(out, 3, 1), 2, 1))
        return out[:, :, :h, :w]


class Mlp(nn.Module):
    """1x1 conv -> ReLU6 -> 1x1 conv (GeoSeg's Mlp; its dropout is 0 in UNetFormer)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = nn.ReLU6()
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block with BatchNorm: x + attn(bn(x)), then x + mlp(bn(x))."""

    def __init__(self, dim: int, num_heads: int, window_size: int, convs, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(dim)
        self.attn = GlobalLocalAttention(dim, num_heads, window_size, convs)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.norm2 = nn.BatchNorm2d(dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))
