"""PyramidMamba: pyramid pooling of the deepest ResNet feature, fused by a Mamba block.

Wang et al., "PyramidMamba: Rethinking Pyramid Feature Fusion with Selective Space State
Model for Semantic Segmentation of Remote Sensing Imagery", 2024; this is GeoSeg's
`EfficientPyramidMamba` (the ResNet-18 variant), with GeoSeg's parameter names:

    x0, x3 = backbone(x)                      stride 4 (64 ch) and stride 32 (512 ch)
    p_i    = upsample(pool_i(x3))             pooled to 1, 5, 9, 13 (last_feat_size 16)
    t      = Mamba(concat(x3, p_1..p_4))      over the H/32 * W/32 positions, row-major
    x      = ConvFFN(t)                       3x3 ConvBNReLU, 1x1, GELU, 1x1
    x      = up_conv(x) + pre_conv(x0)        three nearest 2x upsamplings to stride 4
    logits = head(x)                          two bilinear 2x upsamplings to full size
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..nn.mamba import Mamba
from .backbones.resnet import ResNet
from .base import SegmentationModel
from .layers import Conv, ConvBNReLU
from .registry import register

# timm names GeoSeg passes as backbone_name, and the ResNet depth each builds; the
# ssl/swsl variants differ only in their pretrained weights.
BACKBONES = {"resnet18": 18, "swsl_resnet18": 18, "ssl_resnet18": 18, "resnet34": 34,
             "resnet50": 50, "swsl_resnet50": 50, "ssl_resnet50": 50}


def pool_scales(last_feat_size: int) -> list[int]:
    """GeoSeg's pyramid: 1, 1 + s, 1 + 2s, ... below last_feat_size, s = last_feat_size // 4."""
    return list(range(1, last_feat_size, last_feat_size // 4))


class MambaLayer(nn.Module):
    """Pyramid pooling, then one Mamba over the concatenation (x3 and every pooled map,
    upsampled back), read as a sequence of H*W tokens of d_model = in_chs + dim * pools."""

    def __init__(self, in_chs: int = 512, dim: int = 128, d_state: int = 16, d_conv: int = 4,
                 expand: int = 2, last_feat_size: int = 16, backend: str = "auto"):
        super().__init__()
        scales = pool_scales(last_feat_size)
        self.pool_len = len(scales)
        # The global branch convolves before pooling, the others after (as GeoSeg does,
        # which fixes the child indices in the checkpoint: pool_layers.0.0, pool_layers.i.1).
        self.pool_layers = nn.ModuleList(
            [nn.Sequential(ConvBNReLU(in_chs, dim, kernel_size=1), nn.AdaptiveAvgPool2d(1))]
            + [nn.Sequential(nn.AdaptiveAvgPool2d(s), ConvBNReLU(in_chs, dim, kernel_size=1))
               for s in scales[1:]])
        self.mamba = Mamba(dim * self.pool_len + in_chs, d_state=d_state, d_conv=d_conv,
                           expand=expand, backend=backend)

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        feats = [x] + [F.interpolate(p(x), (h, w), mode="bilinear", align_corners=False)
                       for p in self.pool_layers]
        x = torch.cat(feats, dim=1)
        chs = x.shape[1]
        y = self.mamba(x.flatten(2).transpose(1, 2))
        return y.transpose(1, 2).reshape(b, chs, h, w)


class ConvFFN(nn.Module):
    def __init__(self, in_ch: int = 128, hidden_ch: int = 512, out_ch: int = 128,
                 drop: float = 0.0):
        super().__init__()
        self.conv = ConvBNReLU(in_ch, in_ch, kernel_size=3)
        self.fc1 = Conv(in_ch, hidden_ch, kernel_size=1)
        self.act = nn.GELU()
        self.fc2 = Conv(hidden_ch, out_ch, kernel_size=1)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        x = self.drop(self.act(self.fc1(self.conv(x))))
        return self.drop(self.fc2(x))


class Block(nn.Module):
    def __init__(self, in_chs: int = 512, dim: int = 128, hidden_ch: int = 512,
                 out_ch: int = 128, drop: float = 0.1, last_feat_size: int = 16,
                 backend: str = "auto"):
        super().__init__()
        self.mamba = MambaLayer(in_chs, dim, last_feat_size=last_feat_size, backend=backend)
        self.conv_ffn = ConvFFN(dim * self.mamba.pool_len + in_chs, hidden_ch, out_ch, drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_ffn(self.mamba(x))


class Decoder(nn.Module):
    def __init__(self, encoder_channels=(64, 512), decoder_channels: int = 128,
                 num_classes: int = 6, last_feat_size: int = 16, backend: str = "auto"):
        super().__init__()
        c = decoder_channels
        # GeoSeg fixes the FFN at 512 hidden / 128 out channels; 4c / c equal that at its
        # default width and keep other widths consistent with up_conv.
        self.b3 = Block(encoder_channels[-1], c, hidden_ch=4 * c, out_ch=c,
                        last_feat_size=last_feat_size, backend=backend)
        self.up_conv = nn.Sequential(ConvBNReLU(c, c), nn.Upsample(scale_factor=2),
                                     ConvBNReLU(c, c), nn.Upsample(scale_factor=2),
                                     ConvBNReLU(c, c), nn.Upsample(scale_factor=2))
        self.pre_conv = ConvBNReLU(encoder_channels[0], c)
        self.head = nn.Sequential(
            ConvBNReLU(c, c // 2), nn.Upsample(scale_factor=2, mode="bilinear"),
            ConvBNReLU(c // 2, c // 2), nn.Upsample(scale_factor=2, mode="bilinear"),
            Conv(c // 2, num_classes, kernel_size=1))
        self.apply(_init_weights)

    def forward(self, x0: Tensor, x3: Tensor) -> Tensor:
        x = self.up_conv(self.b3(x3)) + self.pre_conv(x0)
        return self.head(x)


def _init_weights(m: nn.Module):
    # GeoSeg's decoder init. It reaches the Mamba's Linear layers too, so (as in GeoSeg)
    # dt_proj.bias ends at 0 (dt = softplus(0) at init), not at Mamba's dt-range init.
    if isinstance(m, (nn.Linear, nn.Conv2d)):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.LayerNorm, nn.BatchNorm2d)):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


class PyramidMamba(SegmentationModel):
    """GeoSeg's EfficientPyramidMamba. Returns the logits (no auxiliary outputs, in
    training too, as the original).

    backbone: a ResNet named as timm names it (BACKBONES; "swsl_resnet18" by default).
    decoder_channels: decoder width (128). last_feat_size: the stride-32 feature size the
    pyramid is designed for (16 = 512 / 32); it only sets the pool scales (1, 5, 9, 13 at
    16), and with them the Mamba width, so it must match the checkpoint.
    backend: the selective-scan backend of the Mamba block.
    """

    def __init__(self, num_classes: int = 6, in_channels: int = 3, backend: str = "auto",
                 backbone: str = "swsl_resnet18", decoder_channels: int = 128,
                 last_feat_size: int = 16):
        super().__init__(in_channels, num_classes)
        if backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {', '.join(map(repr, BACKBONES))}; "
                             f"got {backbone!r}")
        if (isinstance(decoder_channels, bool) or not isinstance(decoder_channels, int)
                or decoder_channels < 2):
            raise ValueError(f"decoder_channels must be an int >= 2, got {decoder_channels!r}")
        if (isinstance(last_feat_size, bool) or not isinstance(last_feat_size, int)
                or last_feat_size < 4):
            raise ValueError(f"last_feat_size must be an int >= 4 (the pool step is "
                             f"last_feat_size // 4), got {last_feat_size!r}")
        self.backbone = ResNet(BACKBONES[backbone], in_channels, out_indices=(1, 4))
        self.decoder = Decoder(self.backbone.channels, decoder_channels, num_classes,
                               last_feat_size, backend)

    def forward_logits(self, x: Tensor) -> Tensor:
        x0, x3 = self.backbone(x)
        return self.decoder(x0, x3)


@register("pyramidmamba", params_m=28.763328,
          paper="Wang et al., PyramidMamba: Rethinking Pyramid Feature Fusion with Selective "
                "Space State Model for Semantic Segmentation of Remote Sensing Imagery, "
                "arXiv 2024",
          summary="ResNet-18 + pyramid pooling fused by a Mamba (S6) block, ConvFFN, "
                  "UNet-style decoder (GeoSeg's EfficientPyramidMamba)",
          checkpoint="GeoSeg (WangLibo1995/GeoSeg)")
def pyramidmamba(num_classes: int, **options) -> PyramidMamba:
    return PyramidMamba(num_classes, **options)
