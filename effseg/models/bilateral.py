"""Blocks shared by the bilateral nets ABCNet and BANet (both built on BiSeNet's layout:
a shallow spatial path, a deep context path, a fusion module and a pixel-shuffle head).

Child names (conv/bn/relu, convblk/conv_atten, conv/conv_out) follow GeoSeg's
ABCNet.py / BANet.py so their checkpoints load as they are. Unlike layers.ConvBNReLU
(GeoSeg's UNetFormer family: nn.Sequential, ReLU6), these use plain ReLU.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _kaiming(conv: nn.Conv2d) -> None:
    # The originals' init: kaiming normal with a=1 (gain 1, i.e. linear) and zero bias.
    nn.init.kaiming_normal_(conv.weight, a=1)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def up2(x: Tensor) -> Tensor:
    """The originals' nn.Upsample(scale_factor=2): nearest, x2."""
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


class ConvBNReLU(nn.Module):
    """Conv (no bias) -> BatchNorm -> ReLU, children named conv, bn, relu."""

    def __init__(self, in_chan: int, out_chan: int, ks: int = 3, stride: int = 1,
                 padding: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_chan, out_chan, ks, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_chan)
        self.relu = nn.ReLU(inplace=True)
        _kaiming(self.conv)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv(x)))


class SpatialPath(nn.Module):
    """ABCNet's spatial path / BANet's texture path: three strided convs (7x7, 3x3, 3x3)
    to stride 8 with 64 channels, then a 1x1 to 128 channels."""

    def __init__(self, in_channels: int = 3):
        super().__init__()
        self.conv1 = ConvBNReLU(in_channels, 64, ks=7, stride=2, padding=3)
        self.conv2 = ConvBNReLU(64, 64, ks=3, stride=2, padding=1)
        self.conv3 = ConvBNReLU(64, 64, ks=3, stride=2, padding=1)
        self.conv_out = ConvBNReLU(64, 128, ks=1, stride=1, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_out(self.conv3(self.conv2(self.conv1(x))))


class FeatureAggregation(nn.Module):
    """Fuse the two paths: f = ConvBNReLU1x1(cat(spatial, context)), out = f * A(f) + f,
    with A the net's global linear attention (ABCNet: gamma * attn; BANet: f + gamma * attn)."""

    def __init__(self, in_chan: int, out_chan: int, attention: nn.Module):
        super().__init__()
        self.convblk = ConvBNReLU(in_chan, out_chan, ks=1, stride=1, padding=0)
        self.conv_atten = attention

    def forward(self, fsp: Tensor, fcp: Tensor) -> Tensor:
        feat = self.convblk(torch.cat([fsp, fcp], dim=1))
        return feat * self.conv_atten(feat) + feat


class PixelShuffleHead(nn.Module):
    """GeoSeg's `Output`: 3x3 ConvBNReLU, 1x1 conv to n_classes * up_factor^2 channels, then
    PixelShuffle(up_factor) back to full resolution (no interpolation)."""

    def __init__(self, in_chan: int, mid_chan: int, n_classes: int, up_factor: int):
        super().__init__()
        self.conv = ConvBNReLU(in_chan, mid_chan, ks=3, stride=1, padding=1)
        self.conv_out = nn.Conv2d(mid_chan, n_classes * up_factor * up_factor, 1, bias=True)
        self.up = nn.PixelShuffle(up_factor)
        _kaiming(self.conv_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.up(self.conv_out(self.conv(x)))
