"""ResNet encoders (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016).

Parameter names follow torchvision's / timm's ResNet (conv1, bn1, layer1.0.conv1,
layer2.0.downsample.0, ...), which is what GeoSeg's checkpoints hold under
`backbone.` (timm features_only) or under their own prefixes (torchvision children).
"""
from __future__ import annotations

from torch import Tensor, nn


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = _bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = _bn(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(cin, planes, stride)

    def forward(self, x: Tensor) -> Tensor:
        idt = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + idt)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = _bn(planes)
        # Stride on the 3x3 (the "ResNet v1.5" placement torchvision and timm use).
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = _bn(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = _bn(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(cin, out, stride)

    def forward(self, x: Tensor) -> Tensor:
        idt = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        return self.relu(self.bn3(self.conv3(y)) + idt)


def _shortcut(cin: int, cout: int, stride: int):
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _bn(cout))


_DEPTHS = {18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)),
           50: (Bottleneck, (3, 4, 6, 3))}


class ResNet(nn.Module):
    """ResNet-18/34/50 returning the feature maps listed in out_indices.

    Index 0 is the stem (stride 2, after conv1/bn1/relu), 1..4 are layer1..layer4
    (strides 4, 8, 16, 32), as timm's features_only numbering.
    num_classes > 0 keeps the ImageNet head (avgpool + fc) as parameters, for
    checkpoints saved with a whole torchvision ResNet (A2-FPN); forward never uses it.
    """

    def __init__(self, depth: int = 18, in_channels: int = 3,
                 out_indices: tuple[int, ...] = (1, 2, 3, 4), num_classes: int = 0):
        super().__init__()
        if depth not in _DEPTHS:
            raise ValueError(f"depth must be one of {sorted(_DEPTHS)}, got {depth!r}")
        if not out_indices or any(i not in range(5) for i in out_indices):
            raise ValueError(f"out_indices must be a non-empty subset of 0..4, got "
                             f"{out_indices!r}")
        block, counts = _DEPTHS[depth]
        self.out_indices = tuple(out_indices)
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = _bn(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin, chans = 64, []
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), counts)):
            blocks = []
            for j in range(n):
                blocks.append(block(cin, planes, 2 if (j == 0 and i > 0) else 1))
                cin = planes * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            chans.append(cin)
        self.channels_all = (64, *chans)
        if num_classes:
            self.fc = nn.Linear(cin, num_classes)
        self._init()

    @property
    def channels(self) -> tuple[int, ...]:
        """Channels of the returned features (timm's feature_info.channels())."""
        return tuple(self.channels_all[i] for i in self.out_indices)

    def _init(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def stem(self, x: Tensor) -> Tensor:
        return self.relu(self.bn1(self.conv1(x)))

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = []
        x = self.stem(x)
        if 0 in self.out_indices:
            feats.append(x)
        x = self.maxpool(x)
        last = max(self.out_indices)
        for i in range(1, last + 1):
            x = getattr(self, f"layer{i}")(x)
            if i in self.out_indices:
                feats.append(x)
        return feats


def resnet18(in_channels: int = 3, out_indices=(1, 2, 3, 4), num_classes: int = 0) -> ResNet:
    return ResNet(18, in_channels, out_indices, num_classes)


def resnet50(in_channels: int = 3, out_indices=(1, 2, 3, 4), num_classes: int = 0) -> ResNet:
    return ResNet(50, in_channels, out_indices, num_classes)
