"""BiSeNet V2 (Yu, Gao, Wang, Yu, Shen, Sang, "BiSeNet V2: Bilateral network with guided
aggregation for real-time semantic segmentation", IJCV 2021), written from the paper.

Two branches over the input:
- Detail branch (Table 1): wide and shallow, three stages of 3x3 Conv-BN-ReLU
  (64, 64, 128 channels), stride 8.
- Semantic branch: narrow and deep, stride 32: the stem block (Fig. 4a), gather-and-
  expansion layers (Fig. 5, expansion e = 6) at 32, 64 and 128 channels, and the context
  embedding block (Fig. 4b: global average pooling, BN, 1x1 conv, broadcast add, 3x3 conv).
- Bilateral guided aggregation (Fig. 6): each branch gates the other through a sigmoid at
  its own resolution, the two are summed at stride 8 and fused by a 3x3 Conv-BN.
- Segmentation head (Fig. 7): 3x3 Conv-BN-ReLU to Ct channels, 1x1 to the classes,
  bilinear upsampling to the input size. The booster (auxiliary) heads sit on the stem,
  S3, S4 and S5_4 outputs and exist only for training, as in the paper.

Where the figures leave details open: no ReLU after a depthwise conv or after the
aggregation's fuse conv (the figures show BN only there); all upsampling is bilinear with
align_corners=False; convs get Kaiming-normal initialisation (the paper trains from
scratch with it).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ops import _validate as V
from .base import SegmentationModel
from .registry import register

# The zoo's common backend values; there is no effseg op here to pass them to.
BACKENDS = ("auto", "ref", "cpp", "triton")


def _cbr(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1,
         relu: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
              nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class DetailBranch(nn.Module):
    """S1 (64, stride 2), S2 (64, stride 4), S3 (128, stride 8); 2, 3, 3 convs."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.s1 = nn.Sequential(_cbr(in_channels, 64, stride=2), _cbr(64, 64))
        self.s2 = nn.Sequential(_cbr(64, 64, stride=2), _cbr(64, 64), _cbr(64, 64))
        self.s3 = nn.Sequential(_cbr(64, 128, stride=2), _cbr(128, 128), _cbr(128, 128))

    def forward(self, x: Tensor) -> Tensor:
        return self.s3(self.s2(self.s1(x)))


class StemBlock(nn.Module):
    """Stride 4 in two steps: a strided 3x3, then a strided conv path (1x1 squeeze, 3x3)
    beside a max pool, concatenated and fused by a 3x3."""

    def __init__(self, in_channels: int, out_channels: int = 16):
        super().__init__()
        c = out_channels
        self.conv = _cbr(in_channels, c, stride=2)
        self.left = nn.Sequential(_cbr(c, c // 2, 1), _cbr(c // 2, c, stride=2))
        self.right = nn.MaxPool2d(3, 2, 1)
        self.fuse = _cbr(2 * c, c)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        return self.fuse(torch.cat([self.left(x), self.right(x)], 1))


class GatherExpansion(nn.Module):
    """Gather-and-expansion layer: a 3x3 conv gathers, a depthwise 3x3 expands to
    e * C channels (two depthwise convs, the first strided, when stride = 2), a 1x1
    projects to out_channels; residual add (a depthwise-strided + 1x1 shortcut when
    stride = 2), then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int = 6):
        super().__init__()
        if stride == 1 and in_channels != out_channels:
            raise ValueError(f"out_channels must equal in_channels ({in_channels}) at stride 1 "
                             f"(identity shortcut), got {out_channels}")
        mid = in_channels * expansion
        self.gather = _cbr(in_channels, in_channels)
        if stride == 1:
            self.expand = _cbr(in_channels, mid, groups=in_channels, relu=False)
            self.shortcut = None
        else:
            self.expand = nn.Sequential(
                _cbr(in_channels, mid, stride=2, groups=in_channels, relu=False),
                _cbr(mid, mid, groups=mid, relu=False))
            self.shortcut = nn.Sequential(
                _cbr(in_channels, in_channels, stride=2, groups=in_channels, relu=False),
                _cbr(in_channels, out_channels, 1, relu=False))
        self.project = _cbr(mid, out_channels, 1, relu=False)

    def forward(self, x: Tensor) -> Tensor:
        y = self.project(self.expand(self.gather(x)))
        return F.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class ContextEmbedding(nn.Module):
    """Global context: x + Conv1x1-BN-ReLU(BN(avgpool(x))), then a 3x3 Conv-BN-ReLU."""

    def __init__(self, channels: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.gap_conv = _cbr(channels, channels, 1)
        self.fuse = _cbr(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        g = self.gap_conv(self.bn(x.mean((2, 3), keepdim=True)))
        return self.fuse(x + g)


class SemanticBranch(nn.Module):
    """Stem (16, stride 4), S3 (32, /8), S4 (64, /16), S5 (128, /32: four GE + CE).

    forward returns (stem, s3, s4, s5_4, s5_5): the first four feed the booster heads.
    """

    def __init__(self, in_channels: int, expansion: int = 6):
        super().__init__()
        e = expansion
        self.stem = StemBlock(in_channels, 16)
        self.s3 = nn.Sequential(GatherExpansion(16, 32, 2, e), GatherExpansion(32, 32, 1, e))
        self.s4 = nn.Sequential(GatherExpansion(32, 64, 2, e), GatherExpansion(64, 64, 1, e))
        self.s5_4 = nn.Sequential(GatherExpansion(64, 128, 2, e),
                                  *(GatherExpansion(128, 128, 1, e) for _ in range(3)))
        self.s5_5 = ContextEmbedding(128)

    def forward(self, x: Tensor):
        stem = self.stem(x)
        s3 = self.s3(stem)
        s4 = self.s4(s3)
        s5_4 = self.s5_4(s4)
        return stem, s3, s4, s5_4, self.s5_5(s5_4)


class BilateralGuidedAggregation(nn.Module):
    """Detail d (stride 8) and semantic s (stride 32), C channels each:
    out = ConvBN3x3( dw(d) * sigmoid(up4(conv(s)))  +  up4(down4(d) * sigmoid(dw(s))) ),
    so the semantic context gates the detail at stride 8 and the detail gates the
    context at stride 32."""

    def __init__(self, channels: int = 128):
        super().__init__()
        c = channels
        self.detail_keep = nn.Sequential(_cbr(c, c, groups=c, relu=False),
                                         nn.Conv2d(c, c, 1, bias=False))
        self.detail_down = nn.Sequential(_cbr(c, c, stride=2, relu=False),
                                         nn.AvgPool2d(3, 2, 1))
        self.semantic_up = _cbr(c, c, relu=False)
        self.semantic_keep = nn.Sequential(_cbr(c, c, groups=c, relu=False),
                                           nn.Conv2d(c, c, 1, bias=False))
        self.fuse = _cbr(c, c, relu=False)

    def forward(self, d: Tensor, s: Tensor) -> Tensor:
        size = d.shape[-2:]
        up = F.interpolate(self.semantic_up(s), size=size, mode="bilinear",
                           align_corners=False)
        high = self.detail_keep(d) * torch.sigmoid(up)
        low = self.detail_down(d) * torch.sigmoid(self.semantic_keep(s))
        low = F.interpolate(low, size=size, mode="bilinear", align_corners=False)
        return self.fuse(high + low)


class SegHead(nn.Module):
    """3x3 Conv-BN-ReLU to mid_channels, 1x1 classifier, bilinear to the input size."""

    def __init__(self, in_channels: int, mid_channels: int, num_classes: int):
        super().__init__()
        self.conv = _cbr(in_channels, mid_channels)
        self.cls = nn.Conv2d(mid_channels, num_classes, 1)

    def forward(self, x: Tensor, size) -> Tensor:
        return F.interpolate(self.cls(self.conv(x)), size=size, mode="bilinear",
                             align_corners=False)


class BiSeNetV2(SegmentationModel):
    """BiSeNet V2: (B, in_channels, H, W) -> (B, num_classes, H, W) logits.

    Eval returns the logits. Training returns (logits, aux2, aux3, aux4, aux5_4): the
    booster heads' logits from the stem (stride 4), S3 (8), S4 (16) and S5_4 (32)
    features, all at the input size, for the paper's auxiliary losses (aux=False builds
    no booster heads and returns the logits alone in training too).

    head_channels: Ct of the main head (1024); aux_channels: Ct of the booster heads
    (128); expansion: the GE layers' e (6).
    backend: accepted for the zoo's common signature; BiSeNet V2 has no effseg op (its
    convs are standard modules that effseg.compile folds), so every value behaves alike.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, *, aux: bool = True,
                 head_channels: int = 1024, aux_channels: int = 128, expansion: int = 6,
                 backend: str = "auto"):
        super().__init__(in_channels, num_classes)
        V.choice("backend", backend, BACKENDS)
        if not isinstance(aux, bool):
            raise TypeError(f"aux must be a bool, got {type(aux).__name__}")
        for name, v in (("head_channels", head_channels), ("aux_channels", aux_channels),
                        ("expansion", expansion)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        self.detail = DetailBranch(in_channels)
        self.semantic = SemanticBranch(in_channels, expansion)
        self.bga = BilateralGuidedAggregation(128)
        self.head = SegHead(128, head_channels, num_classes)
        self.aux = aux
        if aux:
            self.aux2 = SegHead(16, aux_channels, num_classes)
            self.aux3 = SegHead(32, aux_channels, num_classes)
            self.aux4 = SegHead(64, aux_channels, num_classes)
            self.aux5_4 = SegHead(128, aux_channels, num_classes)
        self._init()

    def _init(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_logits(self, x: Tensor):
        size = x.shape[-2:]
        d = self.detail(x)
        stem, s3, s4, s5_4, s5 = self.semantic(x)
        logits = self.head(self.bga(d, s5), size)
        if not (self.training and self.aux):
            return logits
        return (logits, self.aux2(stem, size), self.aux3(s3, size), self.aux4(s4, size),
                self.aux5_4(s5_4, size))


@register("bisenetv2", params_m=3.626,
          paper="Yu, Gao, Wang, Yu, Shen, Sang, BiSeNet V2: Bilateral network with guided "
                "aggregation for real-time semantic segmentation, IJCV 2021",
          summary="Real-time two-branch net: wide shallow detail branch, narrow deep "
                  "semantic branch, guided aggregation, booster heads in training")
def bisenetv2(num_classes: int, **options) -> BiSeNetV2:
    return BiSeNetV2(num_classes, **options)
