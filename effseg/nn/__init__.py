"""nn.Modules built on effseg's ops."""
from .depthwise_separable_conv import DepthwiseSeparableConv
from .linear_attention import LinearAttention
from .mamba import Mamba
from .ss2d import SS2D

__all__ = ["SS2D", "DepthwiseSeparableConv", "LinearAttention", "Mamba"]
