"""UNetFormerDW: a depthwise-separable UNetFormer student for knowledge distillation.

Encoder: MobileNetV2 (Sandler et al., CVPR 2018) at strides 4-32 (24, 32, 96, 320
channels). Decoder: UNetFormer's (Wang et al., ISPRS J. 2022) - the same Global-Local
Transformer Blocks, weighted fusion, refinement head and auxiliary head - with every
k x k convolution (k > 1) replaced by a MobileNet depthwise-separable block (Howard et
al., 2017) on effseg's depthwise_conv2d; 1x1 convs and the window attention are as in
UNetFormer. Same decode_channels and train/eval outputs as UNetFormer, so its logits,
aux logits and decoder features can be distilled from a UNetFormer teacher.
"""
from __future__ import annotations

from torch import Tensor, nn

from ..nn import DepthwiseSeparableConv
from ..ops import _validate as V
from ..ops.depthwise_conv2d import depthwise_conv2d
from .backbones.mobilenet_v2 import mobilenet_v2
from .base import SegmentationModel
from .layers import ConvBN, ConvBNReLU
from .registry import register
from .unetformer import BACKENDS, check_decoder_options
from .unetformer_decoder import ConvSet, Decoder


class DepthwiseConv(nn.Conv2d):
    """nn.Conv2d(c, c, k, groups=c, bias=True) whose forward is effseg's depthwise_conv2d."""

    def __init__(self, channels: int, kernel_size: int, backend: str = "auto"):
        super().__init__(channels, channels, kernel_size, padding=kernel_size // 2,
                         groups=channels)
        self.backend = backend

    def forward(self, x: Tensor) -> Tensor:
        return depthwise_conv2d(x, self.weight, self.bias, stride=self.stride,
                                padding=self.padding, dilation=self.dilation,
                                backend=self.backend)


class DepthwiseSeparableConvSet(ConvSet):
    """UNetFormer's k x k convs (k > 1) as depthwise-separable blocks; 1x1 as GeoSeg's."""

    def __init__(self, backend: str):
        self.backend = backend

    def _ds(self, cin, cout, k, act, pw_act, **kw):
        return DepthwiseSeparableConv(cin, cout, k, activation=act, pw_activation=pw_act,
                                      backend=self.backend, **kw)

    def conv_bn(self, cin, cout, k):
        return ConvBN(cin, cout, k) if k == 1 else self._ds(cin, cout, k, None, None)

    def conv_bn_relu(self, cin, cout, k):
        return ConvBNReLU(cin, cout, k) if k == 1 else self._ds(cin, cout, k, "relu6", "relu6")

    def sep_conv_bn(self, cin, cout, k):
        # The padding GeoSeg's SeparableConvBN uses; for the ws x ws projection the
        # input arrives reflect-padded by one row and column, so H x W comes out.
        return self._ds(cin, cout, k, None, None, padding=(k - 1) // 2, pw_bn=False)

    def dw_conv(self, c, k):
        return DepthwiseConv(c, k, self.backend)


class UNetFormerDW(SegmentationModel):
    """MobileNetV2 + depthwise-separable UNetFormer decoder (2.07 M parameters at 6 classes).

    Eval returns logits (B, num_classes, H, W); training returns (logits, aux logits),
    as UNetFormer. backend: passed to every depthwise convolution (effseg's
    depthwise_conv2d): "auto", "cpp", "triton" or "ref" (the PyTorch reference).
    decode_channels, dropout, window_size: as UNetFormer's.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, backend: str = "auto", *,
                 decode_channels: int = 64, dropout: float = 0.1, window_size: int = 8):
        super().__init__(in_channels, num_classes)
        V.choice("backend", backend, BACKENDS)
        check_decoder_options(decode_channels, dropout, window_size)
        self.backend = backend
        self.backbone = mobilenet_v2(in_channels, out_indices=(1, 2, 3, 4), backend=backend)
        self.decoder = Decoder(self.backbone.channels, decode_channels, float(dropout),
                               window_size, num_classes, DepthwiseSeparableConvSet(backend))

    def forward_logits(self, x: Tensor):
        h, w = x.shape[-2:]
        return self.decoder(*self.backbone(x), h, w)


@register("unetformer-dw", params_m=2.073,
          paper="Wang et al., UNetFormer, ISPRS J. 2022 (decoder); Sandler et al., "
                "MobileNetV2: Inverted Residuals and Linear Bottlenecks, CVPR 2018 (encoder)",
          summary="Distillation student: MobileNetV2 encoder, UNetFormer decoder with "
                  "depthwise-separable convolutions on effseg's depthwise_conv2d")
def _unetformer_dw(num_classes: int, **options) -> UNetFormerDW:
    return UNetFormerDW(num_classes, **options)
