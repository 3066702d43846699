"""ABCNet (Li et al., ISPRS J. Photogramm. Remote Sens. 2021), GeoSeg's version.

Spatial path (stride 8) + context path on ResNet-18 (timm `swsl_resnet18` features at
strides 8, 16, 32) whose stride-16/32 features go through attention enhancement modules
(ConvBNReLU -> Taylor linear attention -> BN) and a global-average context vector; a
feature aggregation module fuses the paths and a pixel-shuffle head gives full-resolution
logits. Training returns (logits, aux16, aux32) from two auxiliary heads on the context
path, as GeoSeg's does; eval returns the logits.
"""
from __future__ import annotations

from torch import Tensor, nn

from ..nn import LinearAttention
from .backbones import resnet18
from .base import SegmentationModel
from .bilateral import (
    ConvBNReLU,
    FeatureAggregation,
    PixelShuffleHead,
    SpatialPath,
    up2,
)
from .registry import register


class AttentionEnhancement(nn.Module):
    """ConvBNReLU 3x3 -> ABCNet's linear attention (gamma * attn, no residual) -> BN."""

    def __init__(self, in_chan: int, out_chan: int, backend: str = "auto"):
        super().__init__()
        self.conv = ConvBNReLU(in_chan, out_chan, ks=3, stride=1, padding=1)
        self.conv_atten = LinearAttention.abcnet(out_chan, backend=backend)
        self.bn_atten = nn.BatchNorm2d(out_chan)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn_atten(self.conv_atten(self.conv(x)))


class ContextPath(nn.Module):
    """ResNet-18 features at strides 8/16/32 -> (stride-8, stride-16) maps of 128 channels."""

    def __init__(self, in_channels: int = 3, backend: str = "auto"):
        super().__init__()
        self.resnet = resnet18(in_channels, out_indices=(2, 3, 4))
        self.arm16 = AttentionEnhancement(256, 128, backend)
        self.arm32 = AttentionEnhancement(512, 128, backend)
        self.conv_head32 = ConvBNReLU(128, 128, ks=3, stride=1, padding=1)
        self.conv_head16 = ConvBNReLU(128, 128, ks=3, stride=1, padding=1)
        self.conv_avg = ConvBNReLU(512, 128, ks=1, stride=1, padding=0)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        _, feat16, feat32 = self.resnet(x)
        avg = self.conv_avg(feat32.mean(dim=(2, 3), keepdim=True))
        up32 = self.conv_head32(up2(self.arm32(feat32) + avg))
        up16 = self.conv_head16(up2(self.arm16(feat16) + up32))
        return up16, up32


class ABCNet(SegmentationModel):
    """ABCNet with GeoSeg's parameter names (cp.resnet.*, cp.arm16.*, sp.*, fam.*,
    conv_out.*, conv_out16.*, conv_out32.*).

    in_channels: input bands (GeoSeg's `band`, which its code ignores; here it sizes the
    first conv of both paths). backend: effseg linear-attention backend ("ref" routes
    the three attention blocks to the plain-PyTorch reference).
    The aux heads always exist (GeoSeg builds them, so its checkpoints hold them) but
    run only in training. Training needs batch >= 2: the global-context BatchNorm sees
    one value per channel per image, as in the original.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, backend: str = "auto"):
        super().__init__(in_channels, num_classes)
        self.cp = ContextPath(in_channels, backend)
        self.sp = SpatialPath(in_channels)
        self.fam = FeatureAggregation(256, 256, LinearAttention.abcnet(256, backend=backend))
        self.conv_out = PixelShuffleHead(256, 256, num_classes, up_factor=8)
        self.conv_out16 = PixelShuffleHead(128, 64, num_classes, up_factor=8)
        self.conv_out32 = PixelShuffleHead(128, 64, num_classes, up_factor=16)

    def forward_logits(self, x: Tensor):
        feat_cp8, feat_cp16 = self.cp(x)
        out = self.conv_out(self.fam(self.sp(x), feat_cp8))
        if self.training:
            return out, self.conv_out16(feat_cp8), self.conv_out32(feat_cp16)
        return out


@register("abcnet", params_m=13.667,
          paper="Li et al., ABCNet: Attentive bilateral contextual network for efficient "
                "semantic segmentation of fine-resolution remotely sensed imagery, "
                "ISPRS J. Photogramm. Remote Sens. 2021",
          summary="Bilateral net: spatial path + ResNet-18 context path with Taylor linear "
                  "attention, feature aggregation, pixel-shuffle heads",
          checkpoint="GeoSeg (WangLibo1995/GeoSeg)")
def abcnet(num_classes: int, **options) -> ABCNet:
    return ABCNet(num_classes, **options)
