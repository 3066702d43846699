"""UNetFormer's decoder (Wang et al., ISPRS J. 2022): Global-Local Transformer Blocks on
the 1/32, 1/16 and 1/8 features, weighted fusion (WF) of the skip connections, the
Feature Refinement Head at 1/4, and the auxiliary head used in training.

Module names and shapes follow GeoSeg's `Decoder` (pre_conv, b4, b3, p3, b2, p2,
aux_head, p1, segmentation_head), so `decoder.*` checkpoint keys match. GeoSeg's
`init_weight` only visits direct Conv2d children, of which there are none, so every
layer keeps PyTorch's default initialisation; so does this decoder.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .global_local_attention import Block
from .layers import Conv, ConvBN, ConvBNReLU, SeparableConvBN


class ConvSet:
    """The convolutions a UNetFormer decoder is built from: GeoSeg's conv + BN blocks.

    conv: plain conv; conv_bn / conv_bn_relu: conv + BN (+ ReLU6), "same" padding;
    sep_conv_bn: depthwise k x k + BN + pointwise, padded (k - 1) // 2 (GeoSeg's formula);
    dw_conv: depthwise k x k with bias. Subclasses swap in other implementations.
    """

    def conv(self, cin: int, cout: int, k: int, bias: bool = False) -> nn.Module:
        return Conv(cin, cout, k, bias=bias)

    def conv_bn(self, cin: int, cout: int, k: int) -> nn.Module:
        return ConvBN(cin, cout, k)

    def conv_bn_relu(self, cin: int, cout: int, k: int) -> nn.Module:
        return ConvBNReLU(cin, cout, k)

    def sep_conv_bn(self, cin: int, cout: int, k: int) -> nn.Module:
        return SeparableConvBN(cin, cout, k)

    def dw_conv(self, c: int, k: int) -> nn.Module:
        return nn.Conv2d(c, c, k, padding=k // 2, groups=c)


def _fuse(weights: Tensor, eps: float, res: Tensor, x: Tensor) -> Tensor:
    # Learned non-negative weights, normalised to sum to ~1 (the paper's Eq. 5).
    w = F.relu(weights)
    w = w / (torch.sum(w, dim=0) + eps)
    up = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    return w[0] * res + w[1] * up


class WF(nn.Module):
    """Weighted fusion of the upsampled decoder feature with a 1x1-projected skip."""

    def __init__(self, in_channels: int, decode_channels: int, convs: ConvSet, eps: float = 1e-8):
        super().__init__()
        self.pre_conv = convs.conv(in_channels, decode_channels, 1)
        self.weights = nn.Parameter(torch.ones(2))
        self.eps = eps
        self.post_conv = convs.conv_bn_relu(decode_channels, decode_channels, 3)

    def forward(self, x: Tensor, res: Tensor) -> Tensor:
        return self.post_conv(_fuse(self.weights, self.eps, self.pre_conv(res), x))


class FeatureRefinementHead(nn.Module):
    """WF, then a spatial (depthwise conv + sigmoid) and a channel (SE-style) gate, a
    separable conv and a 1x1 shortcut (the paper's Sec. 3.4)."""

    def __init__(self, in_channels: int, decode_channels: int, convs: ConvSet):
        super().__init__()
        c = decode_channels
        self.pre_conv = convs.conv(in_channels, c, 1)
        self.weights = nn.Parameter(torch.ones(2))
        self.eps = 1e-8
        self.post_conv = convs.conv_bn_relu(c, c, 3)
        self.pa = nn.Sequential(convs.dw_conv(c, 3), nn.Sigmoid())
        self.ca = nn.Sequential(nn.AdaptiveAvgPool2d(1), convs.conv(c, c // 16, 1), nn.ReLU6(),
                                convs.conv(c // 16, c, 1), nn.Sigmoid())
        self.shortcut = convs.conv_bn(c, c, 1)
        self.proj = convs.sep_conv_bn(c, c, 3)
        self.act = nn.ReLU6()

    def forward(self, x: Tensor, res: Tensor) -> Tensor:
        x = self.post_conv(_fuse(self.weights, self.eps, self.pre_conv(res), x))
        shortcut = self.shortcut(x)
        x = self.pa(x) * x + self.ca(x) * x
        return self.act(self.proj(x) + shortcut)


class AuxHead(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, convs: ConvSet):
        super().__init__()
        self.conv = convs.conv_bn_relu(in_channels, in_channels, 3)
        self.drop = nn.Dropout(0.1)
        self.conv_out = convs.conv(in_channels, num_classes, 1)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        x = self.conv_out(self.drop(self.conv(x)))
        return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)


class Decoder(nn.Module):
    """Features (1/4, 1/8, 1/16, 1/32) -> logits at (h, w); in training also the
    auxiliary logits from the sum of the three transformer stages' outputs at 1/8."""

    def __init__(self, encoder_channels, decode_channels: int, dropout: float,
                 window_size: int, num_classes: int, convs: ConvSet | None = None,
                 num_heads: int = 8):
        super().__init__()
        convs = convs or ConvSet()
        c = decode_channels
        self.pre_conv = convs.conv_bn(encoder_channels[-1], c, 1)
        self.b4 = Block(c, num_heads, window_size, convs)
        self.b3 = Block(c, num_heads, window_size, convs)
        self.p3 = WF(encoder_channels[-2], c, convs)
        self.b2 = Block(c, num_heads, window_size, convs)
        self.p2 = WF(encoder_channels[-3], c, convs)
        # GeoSeg builds the aux head whenever the decoder is constructed (modules start
        # in training mode), so its weights are in every checkpoint.
        self.aux_head = AuxHead(c, num_classes, convs)
        self.p1 = FeatureRefinementHead(encoder_channels[-4], c, convs)
        self.segmentation_head = nn.Sequential(convs.conv_bn_relu(c, c, 3), nn.Dropout2d(dropout),
                                               convs.conv(c, num_classes, 1))

    def forward(self, res1: Tensor, res2: Tensor, res3: Tensor, res4: Tensor, h: int, w: int):
        x4 = self.b4(self.pre_conv(res4))
        x3 = self.b3(self.p3(x4, res3))
        x2 = self.b2(self.p2(x3, res2))
        x = self.segmentation_head(self.p1(x2, res1))
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        if not self.training:
            return x
        # GeoSeg's nn.UpsamplingBilinear2d: align_corners=True.
        aux = (F.interpolate(x4, scale_factor=4, mode="bilinear", align_corners=True)
               + F.interpolate(x3, scale_factor=2, mode="bilinear", align_corners=True) + x2)
        return x, self.aux_head(aux, h, w)
