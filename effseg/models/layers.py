"""Conv building blocks shared by the GeoSeg-family decoders (UNetFormer, PyramidMamba).

They subclass nn.Sequential so their children are named 0, 1, 2, as in GeoSeg's
checkpoints; padding keeps the spatial size at stride 1 ("same" for odd kernels).
"""
from __future__ import annotations

from torch import nn


def _same(kernel_size: int, stride: int, dilation: int) -> int:
    return ((stride - 1) + dilation * (kernel_size - 1)) // 2


def _conv(cin, cout, k, stride, dilation, bias, groups=1):
    return nn.Conv2d(cin, cout, k, stride=stride, dilation=dilation,
                     padding=_same(k, stride, dilation), groups=groups, bias=bias)


class Conv(nn.Sequential):
    def __init__(self, in_channels, out_channels, kernel_size=3, dilation=1, stride=1,
                 bias=False):
        super().__init__(_conv(in_channels, out_channels, kernel_size, stride, dilation, bias))


class ConvBN(nn.Sequential):
    def __init__(self, in_channels, out_channels, kernel_size=3, dilation=1, stride=1,
                 norm_layer=nn.BatchNorm2d, bias=False):
        super().__init__(_conv(in_channels, out_channels, kernel_size, stride, dilation, bias),
                         norm_layer(out_channels))


class ConvBNReLU(nn.Sequential):
    def __init__(self, in_channels, out_channels, kernel_size=3, dilation=1, stride=1,
                 norm_layer=nn.BatchNorm2d, bias=False):
        super().__init__(_conv(in_channels, out_channels, kernel_size, stride, dilation, bias),
                         norm_layer(out_channels), nn.ReLU6())


# The separable variants put the norm between the depthwise and pointwise convs, so it
# normalises in_channels; GeoSeg sizes it out_channels, which only works when they are
# equal. Sizing it in_channels keeps every equal-channel checkpoint loading and makes
# the unequal case work instead of failing at run time.
class SeparableConvBN(nn.Sequential):
    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, dilation=1,
                 norm_layer=nn.BatchNorm2d):
        super().__init__(
            _conv(in_channels, in_channels, kernel_size, stride, dilation, False, in_channels),
            norm_layer(in_channels),
            nn.Conv2d(in_channels, out_channels, 1, bias=False))


class SeparableConvBNReLU(nn.Sequential):
    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, dilation=1,
                 norm_layer=nn.BatchNorm2d):
        body = SeparableConvBN(in_channels, out_channels, kernel_size, stride, dilation,
                               norm_layer)
        super().__init__(*body, nn.ReLU6())


class SeparableConv(nn.Sequential):
    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, dilation=1):
        super().__init__(
            _conv(in_channels, in_channels, kernel_size, stride, dilation, False, in_channels),
            nn.Conv2d(in_channels, out_channels, 1, bias=False))
