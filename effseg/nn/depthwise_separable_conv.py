"""Depthwise-separable convolution block on effseg's depthwise_conv2d."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..ops.depthwise_conv2d import ACTIVATIONS, _act_ref, depthwise_conv2d
from ..ops.fold_batchnorm import fold_batchnorm


class DepthwiseSeparableConv(nn.Module):
    """depthwise kxk conv -> BN -> activation -> pointwise 1x1 conv -> BN -> pw_activation
    (MobileNet's separable block; Howard et al. 2017).

    in_ch, out_ch: channels; kernel_size: int or pair (1..31, even sizes too); stride,
    dilation: int or pair. padding: None picks "same" for stride 1 (PyTorch's split for
    even kernels) and ((stride - 1) + dilation * (k - 1)) // 2 per side otherwise (the
    formula of GeoSeg's SeparableConvBNReLU); an int, pair, "same" or "valid" is used as
    given. activation / pw_activation: None, "relu", "relu6", "gelu" or "silu".
    pw_bn: BatchNorm after the pointwise conv (else the pointwise conv has a bias).

    Parameters live in standard modules (dw: the groups=in_ch Conv2d, dw_bn, pw, pw_bn),
    so state dicts of the same layout load. In training mode the depthwise op runs
    without bias, BN normalises by batch statistics and the activation follows; in eval
    mode both BNs are folded into the convolutions (fold_batchnorm) and the depthwise
    conv, its bias and the activation run as one kernel.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size=3, stride=1, dilation=1,
                 activation: str | None = "relu6", *, padding: None | int | tuple | str = None,
                 pw_bn: bool = True, pw_activation: str | None = None, backend: str = "auto"):
        super().__init__()
        if in_ch < 1 or out_ch < 1:
            raise ValueError(f"in_ch and out_ch must be >= 1, got {in_ch}, {out_ch}")
        for name, act in (("activation", activation), ("pw_activation", pw_activation)):
            if act not in ACTIVATIONS:
                raise ValueError(f"{name} must be one of {ACTIVATIONS}, got {act!r}")
        k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        s = (stride, stride) if isinstance(stride, int) else tuple(stride)
        d = (dilation, dilation) if isinstance(dilation, int) else tuple(dilation)
        if padding is None:
            padding = "same" if s == (1, 1) else tuple(((s[i] - 1) + d[i] * (k[i] - 1)) // 2 for i in range(2))
        self.padding, self.activation, self.pw_activation = padding, activation, pw_activation
        self.backend = backend
        # nn.Conv2d holds the depthwise weight (and validates its geometry); its own
        # forward is never called.
        self.dw = nn.Conv2d(in_ch, in_ch, k, stride=s, dilation=d, groups=in_ch, bias=False,
                            padding=0 if isinstance(padding, str) else padding)
        self.dw_bn = nn.BatchNorm2d(in_ch)
        self.pw = nn.Conv2d(in_ch, out_ch, 1, bias=not pw_bn)
        self.pw_bn = nn.BatchNorm2d(out_ch) if pw_bn else None

    def _dw(self, x: Tensor, weight: Tensor, bias: Tensor | None, activation) -> Tensor:
        return depthwise_conv2d(x, weight, bias, stride=self.dw.stride, padding=self.padding,
                                dilation=self.dw.dilation, activation=activation,
                                backend=self.backend)

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            y = _act_ref(self.dw_bn(self._dw(x, self.dw.weight, None, None)), self.activation)
            y = self.pw(y)
            if self.pw_bn is not None:
                y = self.pw_bn(y)
        else:
            w, b = fold_batchnorm(self.dw.weight, None, self.dw_bn)
            y = self._dw(x, w, b, self.activation)
            pw_w, pw_b = self.pw.weight, self.pw.bias
            if self.pw_bn is not None:
                pw_w, pw_b = fold_batchnorm(pw_w, pw_b, self.pw_bn)
            y = F.conv2d(y, pw_w, pw_b)
        return _act_ref(y, self.pw_activation)

    def extra_repr(self) -> str:
        return (f"padding={self.padding!r}, activation={self.activation!r}, "
                f"pw_activation={self.pw_activation!r}, backend={self.backend!r}")
