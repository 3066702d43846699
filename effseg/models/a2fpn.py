"""A2-FPN (Li et al., "A2-FPN for semantic segmentation of fine-resolution remotely sensed
images", IJRS 2022), as GeoSeg builds it.

A ResNet-18 encoder, an FPN top-down path, one segmentation block per pyramid level
(3x3 conv + GroupNorm + ReLU, bilinear x2 upsampling until stride 4), and the attention
aggregation module: the four level maps are concatenated, fused by a 1x1 conv and
refined by the Taylor linear attention (feat + gamma * attention(feat)), then a 1x1
classifier and bilinear x4 upsampling.

Checkpoint layout: GeoSeg keeps the whole torchvision ResNet-18 (fc included) as
`base_model` and the same modules again as layer_down0..4, so its state dict lists every
encoder tensor under both names. This class holds them the same way (the modules are
shared, not copied), which is what lets those checkpoints load strictly.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..nn import LinearAttention
from ..ops import _validate as V
from ..ops.linear_attention import BACKENDS
from .backbones import ResNet
from .base import SegmentationModel
from .registry import register

GROUPS = 32   # GroupNorm groups in the segmentation blocks (GeoSeg's constant)


class ConvBnRelu(nn.Module):
    """conv (no bias) -> BN -> ReLU, with GeoSeg's child names conv / bn."""

    def __init__(self, in_planes: int, out_planes: int, ksize: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_planes, out_planes, ksize, padding=ksize // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_planes)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


class Conv3x3GNReLU(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, upsample: bool = False):
        super().__init__()
        self.upsample = upsample
        self.block = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.GroupNorm(GROUPS, out_channels),
            nn.ReLU(inplace=True))

    def forward(self, x: Tensor) -> Tensor:
        x = self.block(x)
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        return x


class FPNBlock(nn.Module):
    """Top-down step: nearest x2 of the coarser map plus a 1x1 projection of the skip."""

    def __init__(self, pyramid_channels: int, skip_channels: int):
        super().__init__()
        self.skip_conv = nn.Conv2d(skip_channels, pyramid_channels, 1)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=2, mode="nearest") + self.skip_conv(skip)


class SegmentationBlock(nn.Module):
    """max(1, n_upsamples) Conv3x3GNReLU blocks, each upsampling x2 when n_upsamples > 0."""

    def __init__(self, in_channels: int, out_channels: int, n_upsamples: int = 0):
        super().__init__()
        blocks = [Conv3x3GNReLU(in_channels, out_channels, upsample=n_upsamples > 0)]
        blocks += [Conv3x3GNReLU(out_channels, out_channels, upsample=True)
                   for _ in range(1, n_upsamples)]
        self.block = nn.Sequential(*blocks)

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)


class AttentionAggregationModule(nn.Module):
    def __init__(self, in_chan: int, out_chan: int, backend: str = "auto"):
        super().__init__()
        self.convblk = ConvBnRelu(in_chan, out_chan, 1)
        # GeoSeg's A2-FPN `Attention` is ABCNet's block: Taylor attention, gamma * out.
        self.conv_atten = LinearAttention.abcnet(out_chan, backend=backend)

    def forward(self, s5: Tensor, s4: Tensor, s3: Tensor, s2: Tensor) -> Tensor:
        feat = self.convblk(torch.cat([s5, s4, s3, s2], dim=1))
        return self.conv_atten(feat) + feat


class A2FPN(SegmentationModel):
    """A2-FPN: (B, in_channels, H, W) -> (B, num_classes, H, W) logits.

    pyramid_channels / segmentation_channels: widths of the FPN and of the segmentation
    blocks (GeoSeg: 64 / 64; segmentation_channels must be a multiple of 32 for the
    GroupNorm). dropout: Dropout2d rate before the classifier (training only).
    backend: the linear_attention backend ("ref" for the readable reference).
    The original has no auxiliary outputs, so training mode returns the logits alone.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, pyramid_channels: int = 64,
                 segmentation_channels: int = 64, dropout: float = 0.2,
                 backend: str = "auto"):
        super().__init__(in_channels, num_classes)
        V.choice("backend", backend, BACKENDS)
        _positive_int("pyramid_channels", pyramid_channels)
        _positive_int("segmentation_channels", segmentation_channels)
        if segmentation_channels % GROUPS:
            raise ValueError(f"segmentation_channels must be a multiple of {GROUPS} (the "
                             f"GroupNorm groups), got {segmentation_channels}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) \
                or not 0 <= dropout < 1:
            raise ValueError(f"dropout must be a float in [0, 1), got {dropout!r}")
        # The whole torchvision-style ResNet-18 with its 1000-way fc, which forward never
        # uses: GeoSeg's checkpoints hold it (see the module docstring).
        self.base_model = ResNet(18, in_channels, num_classes=1000)
        b = self.base_model
        self.layer_down0 = nn.Sequential(b.conv1, b.bn1, b.relu)   # stride 2, 64
        self.layer_down1 = nn.Sequential(b.maxpool, b.layer1)      # stride 4, 64
        self.layer_down2 = b.layer2                                # stride 8, 128
        self.layer_down3 = b.layer3                                # stride 16, 256
        self.layer_down4 = b.layer4                                # stride 32, 512
        enc = b.channels_all[1:]
        pc, sc = pyramid_channels, segmentation_channels
        self.conv1 = nn.Conv2d(enc[3], pc, 1)
        self.p4 = FPNBlock(pc, enc[2])
        self.p3 = FPNBlock(pc, enc[1])
        self.p2 = FPNBlock(pc, enc[0])
        self.s5 = SegmentationBlock(pc, sc, n_upsamples=3)
        self.s4 = SegmentationBlock(pc, sc, n_upsamples=2)
        self.s3 = SegmentationBlock(pc, sc, n_upsamples=1)
        self.s2 = SegmentationBlock(pc, sc, n_upsamples=0)
        self.attention = AttentionAggregationModule(sc * 4, sc * 4, backend)
        self.final_conv = nn.Conv2d(sc * 4, num_classes, 1)
        self.dropout = nn.Dropout2d(p=float(dropout))

    def forward_logits(self, x: Tensor) -> Tensor:
        c2 = self.layer_down1(self.layer_down0(x))
        c3 = self.layer_down2(c2)
        c4 = self.layer_down3(c3)
        c5 = self.layer_down4(c4)
        p5 = self.conv1(c5)
        p4 = self.p4(p5, c4)
        p3 = self.p3(p4, c3)
        p2 = self.p2(p3, c2)
        out = self.attention(self.s5(p5), self.s4(p4), self.s3(p3), self.s2(p2))
        out = self.final_conv(self.dropout(out))
        return F.interpolate(out, scale_factor=4, mode="bilinear", align_corners=True)


def _positive_int(name: str, v) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be an int >= 1, got {v!r}")


@register("a2fpn", params_m=12.16,
          paper="Li et al., A2-FPN for semantic segmentation of fine-resolution remotely "
                "sensed images, IJRS 2022",
          summary="ResNet-18 FPN whose four level maps are fused by a Taylor linear-"
                  "attention aggregation module",
          checkpoint="GeoSeg (WangLibo1995/GeoSeg)")
def a2fpn(num_classes: int, **options) -> A2FPN:
    return A2FPN(num_classes, **options)
