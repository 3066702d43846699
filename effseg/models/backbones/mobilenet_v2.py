"""MobileNetV2 encoder (Sandler et al., "MobileNetV2: Inverted Residuals and Linear
Bottlenecks", CVPR 2018) whose depthwise-separable part runs on effseg's
depthwise_conv2d (effseg.nn.DepthwiseSeparableConv).

Each inverted residual is: 1x1 expansion conv + BN + ReLU6 (a standard module, left to
the compile passes), then DepthwiseSeparableConv = 3x3 depthwise + BN + ReLU6 and the
linear 1x1 projection + BN; a residual when stride 1 and channels match. Width 1.0,
the paper's Table 2 without the final 1x1 conv to 1280 and the classifier.
Parameter names are effseg's own (torchvision's ImageNet weights do not load as-is).
"""
from __future__ import annotations

from torch import Tensor, nn

from ...nn import DepthwiseSeparableConv

# (expansion t, output channels c, repeats n, first stride s): the paper's Table 2.
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
            (6, 160, 3, 2), (6, 320, 1, 1))


def _conv_bn_relu6(cin: int, cout: int, k: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6())


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expansion: int, backend: str = "auto"):
        super().__init__()
        hidden = cin * expansion
        self.expand = _conv_bn_relu6(cin, hidden, 1) if expansion != 1 else None
        self.dwsep = DepthwiseSeparableConv(hidden, cout, 3, stride, activation="relu6",
                                            pw_activation=None, backend=backend)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = x if self.expand is None else self.expand(x)
        y = self.dwsep(y)
        return x + y if self.residual else y


class MobileNetV2(nn.Module):
    """Features at strides 2, 4, 8, 16, 32 (indices 0..4, channels 16, 24, 32, 96, 320);
    out_indices picks which are returned. `stages[i]` produces feature i; the stem
    (3x3 stride-2 conv to 32 channels) feeds stage 0."""

    def __init__(self, in_channels: int = 3, out_indices: tuple[int, ...] = (1, 2, 3, 4),
                 backend: str = "auto"):
        super().__init__()
        if not out_indices or any(i not in range(5) for i in out_indices):
            raise ValueError(f"out_indices must be a non-empty subset of 0..4, got "
                             f"{out_indices!r}")
        self.out_indices = tuple(out_indices)
        self.stem = _conv_bn_relu6(in_channels, 32, 3, 2)
        # Blocks grouped by the stride of their output: (t=1,c=16) | 24 | 32 | 64+96 | 160+320.
        groups = ((0,), (1,), (2,), (3, 4), (5, 6))
        cin, stages, chans = 32, [], []
        for g in groups:
            blocks = []
            for t, c, n, s in (SETTINGS[i] for i in g):
                for j in range(n):
                    blocks.append(InvertedResidual(cin, c, s if j == 0 else 1, t, backend))
                    cin = c
            stages.append(nn.Sequential(*blocks))
            chans.append(cin)
        self.stages = nn.ModuleList(stages)
        self.channels_all = tuple(chans)
        self._init()

    @property
    def channels(self) -> tuple[int, ...]:
        return tuple(self.channels_all[i] for i in self.out_indices)

    def _init(self):
        # torchvision's MobileNetV2 initialisation.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = []
        x = self.stem(x)
        for i in range(max(self.out_indices) + 1):
            x = self.stages[i](x)
            if i in self.out_indices:
                feats.append(x)
        return feats


def mobilenet_v2(in_channels: int = 3, out_indices=(1, 2, 3, 4), backend: str = "auto") -> MobileNetV2:
    return MobileNetV2(in_channels, out_indices, backend)
