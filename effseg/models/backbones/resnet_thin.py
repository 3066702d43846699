"""ResNet-18 at a reduced width: the light encoder of distillation students (cmunet-tiny).

Same layout and parameter names as effseg's ResNet-18 (conv1, bn1, layer1.0.conv1, ...),
every channel count scaled by width / 64, so the stage structure (strides 2..32,
two BasicBlocks per stage) matches the teacher's ResNet-18 stage for stage.
"""
from __future__ import annotations

from torch import nn

from .resnet import BasicBlock, ResNet, _bn


class ThinResNet18(ResNet):
    """ResNet-18 with stage widths (width, 2, 4, 8 x width); width=64 is ResNet-18."""

    def __init__(self, width: int = 32, in_channels: int = 3,
                 out_indices: tuple[int, ...] = (1, 2, 3, 4)):
        nn.Module.__init__(self)
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be an int >= 1, got {width!r}")
        if not out_indices or any(i not in range(5) for i in out_indices):
            raise ValueError(f"out_indices must be a non-empty subset of 0..4, got "
                             f"{out_indices!r}")
        self.out_indices = tuple(out_indices)
        self.conv1 = nn.Conv2d(in_channels, width, 7, 2, 3, bias=False)
        self.bn1 = _bn(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin, chans = width, []
        for i in range(4):
            planes = width << i
            blocks = [BasicBlock(cin, planes, 2 if i > 0 else 1), BasicBlock(planes, planes)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            cin = planes
            chans.append(planes)
        self.channels_all = (width, *chans)
        self._init()
