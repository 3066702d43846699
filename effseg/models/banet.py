"""BANet (Wang et al., Remote Sensing 2021), GeoSeg's version.

Dependency path: ResT-Lite (stride-16 and stride-32 maps); an attention embedding module
runs BANet's linear attention (x + gamma * Taylor attention) on the stride-32 map,
convolves, pixel-shuffles it to stride 16 and uses it to re-weight the stride-16 map
(low * A + low); a 1x1 ConvBNReLU and a nearest x2 give 128 channels at stride 8.
Texture path: three strided convs to stride 8 (ABCNet's spatial path). A feature
aggregation module with the same linear attention fuses them and a pixel-shuffle head
gives full-resolution logits. BANet has no auxiliary head: train and eval both return
the logits.
"""
from __future__ import annotations

from torch import Tensor, nn

from ..nn import LinearAttention
from .backbones import resnet18, rest_lite
from .base import SegmentationModel
from .bilateral import (
    ConvBNReLU,
    FeatureAggregation,
    PixelShuffleHead,
    SpatialPath,
    up2,
)
from .registry import register

BACKBONES = ("rest_lite", "resnet18")


class UpSample(nn.Module):
    """1x1 conv to 4x channels, then PixelShuffle(2): a learned x2 upsampling."""

    def __init__(self, n_chan: int, factor: int = 2):
        super().__init__()
        self.proj = nn.Conv2d(n_chan, n_chan * factor * factor, 1)
        self.up = nn.PixelShuffle(factor)
        nn.init.xavier_normal_(self.proj.weight, gain=1.0)

    def forward(self, x: Tensor) -> Tensor:
        return self.up(self.proj(x))


class AttentionEmbedding(nn.Module):
    """high (stride 32) -> linear attention -> 3x3 ConvBNReLU -> x2 -> A; low * A + low."""

    def __init__(self, in_channels: int, out_channels: int, backend: str = "auto"):
        super().__init__()
        self.attention = LinearAttention.banet(in_channels, backend=backend)
        self.conv_attn = ConvBNReLU(in_channels, out_channels)
        self.up = UpSample(out_channels)

    def forward(self, high_feat: Tensor, low_feat: Tensor) -> Tensor:
        a = self.up(self.conv_attn(self.attention(high_feat)))
        return low_feat * a + low_feat


class _DependencyHead(nn.Module):
    """Shared tail of both dependency paths: AE(e4, e3) -> 1x1 ConvBNReLU to 128 -> x2."""

    def _add_head(self, backend: str) -> None:
        self.AE = AttentionEmbedding(512, 256, backend)
        self.conv_avg = ConvBNReLU(256, 128, ks=1, stride=1, padding=0)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        e3, e4 = self.encode(x)
        return up2(self.conv_avg(self.AE(e4, e3)))


class DependencyPath(_DependencyHead):
    """GeoSeg's DependencyPath: ResT-Lite under `ResT.`."""

    def __init__(self, in_channels: int = 3, backend: str = "auto",
                 drop_path_rate: float = 0.0):
        super().__init__()
        self.ResT = rest_lite(in_channels, out_indices=(2, 3), drop_path_rate=drop_path_rate)
        self._add_head(backend)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        e3, e4 = self.ResT(x)
        return e3, e4


class DependencyPathRes(_DependencyHead):
    """GeoSeg's DependencyPathRes: torchvision ResNet-18 children under their names there
    (firstconv, firstbn, encoder1..4)."""

    def __init__(self, in_channels: int = 3, backend: str = "auto"):
        super().__init__()
        r = resnet18(in_channels, out_indices=(3, 4))
        self.firstconv, self.firstbn, self.firstrelu = r.conv1, r.bn1, r.relu
        self.firstmaxpool = r.maxpool
        self.encoder1, self.encoder2 = r.layer1, r.layer2
        self.encoder3, self.encoder4 = r.layer3, r.layer4
        self._add_head(backend)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.firstmaxpool(self.firstrelu(self.firstbn(self.firstconv(x))))
        e3 = self.encoder3(self.encoder2(self.encoder1(x)))
        return e3, self.encoder4(e3)


class BANet(SegmentationModel):
    """BANet with GeoSeg's parameter names (cp.ResT.*, cp.AE.*, sp.*, fam.*, conv_out.*).

    in_channels: input bands (GeoSeg's BANet is RGB only; here it sizes the first conv of
    both paths). backend: effseg linear-attention backend ("ref" routes the two attention
    blocks to the plain-PyTorch reference).
    backbone: "rest_lite" (BANet's dependency path) or "resnet18" (GeoSeg's alternative
    DependencyPathRes on torchvision ResNet-18 pieces, keys cp.firstconv.*, cp.encoder1.*).
    drop_path_rate: stochastic depth in ResT-Lite (0 in GeoSeg); rest_lite only.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, backend: str = "auto",
                 backbone: str = "rest_lite", drop_path_rate: float = 0.0):
        super().__init__(in_channels, num_classes)
        if backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {', '.join(map(repr, BACKBONES))}; "
                             f"got {backbone!r}")
        if isinstance(drop_path_rate, bool) or not isinstance(drop_path_rate, (int, float)) \
                or not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be a number in [0, 1), got "
                             f"{drop_path_rate!r}")
        if backbone == "resnet18":
            if drop_path_rate:
                raise ValueError("drop_path_rate applies to backbone='rest_lite' only, got "
                                 f"drop_path_rate={drop_path_rate!r} with backbone='resnet18'")
            self.cp = DependencyPathRes(in_channels, backend)
        else:
            self.cp = DependencyPath(in_channels, backend, float(drop_path_rate))
        self.backbone = backbone
        self.sp = SpatialPath(in_channels)
        self.fam = FeatureAggregation(256, 256, LinearAttention.banet(256, backend=backend))
        self.conv_out = PixelShuffleHead(256, 256, num_classes, up_factor=8)

    def forward_logits(self, x: Tensor) -> Tensor:
        return self.conv_out(self.fam(self.sp(x), self.cp(x)))


@register("banet", params_m=12.729,
          paper="Wang et al., Transformer meets convolution: a bilateral awareness network "
                "for semantic segmentation of very fine resolution urban scene images, "
                "Remote Sensing 2021",
          summary="Bilateral net: ResT-Lite dependency path with linear-attention embedding "
                  "+ conv texture path, linear-attention fusion, pixel-shuffle head",
          checkpoint="GeoSeg (WangLibo1995/GeoSeg)")
def banet(num_classes: int, **options) -> BANet:
    return BANet(num_classes, **options)
