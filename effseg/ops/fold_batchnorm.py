"""Folding an inference-mode BatchNorm2d into the convolution before it."""
from __future__ import annotations

import torch
from torch import Tensor, nn


def fold_batchnorm(conv_weight: Tensor, conv_bias: Tensor | None,
                   bn: nn.modules.batchnorm._BatchNorm) -> tuple[Tensor, Tensor]:
    """Weight and bias of one convolution equal to `conv` followed by `bn` in eval mode.

    conv_weight: (C_out, ...) — a depthwise (C, 1, kH, kW) or any other conv weight whose
    first dim is bn's channel count; conv_bias: (C_out,) or None; bn: a BatchNorm with
    running statistics. With s = gamma / sqrt(running_var + eps):

        weight' = weight * s (per output channel),  bias' = (bias - running_mean) * s + beta

    so conv(x, weight', bias') == bn(conv(x, weight, bias)) when bn uses its running
    statistics (eval mode; in training mode bn normalises by batch statistics instead).
    The results are new tensors in conv_weight's dtype, differentiable in every input.
    """
    if not isinstance(bn, nn.modules.batchnorm._BatchNorm):
        raise TypeError(f"bn must be a BatchNorm module (e.g. nn.BatchNorm2d), got {type(bn).__name__}")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("bn has no running statistics (track_running_stats=False): there is "
                         "nothing to fold")
    if not isinstance(conv_weight, Tensor) or conv_weight.dim() < 1:
        raise TypeError(f"conv_weight must be a tensor (C_out, ...), got {type(conv_weight).__name__}")
    c = conv_weight.shape[0]
    if bn.num_features != c:
        raise ValueError(f"bn has {bn.num_features} channels but conv_weight has {c} output "
                         f"channels (shape {tuple(conv_weight.shape)})")
    if conv_bias is not None and tuple(conv_bias.shape) != (c,):
        raise ValueError(f"conv_bias must have shape ({c},), got {tuple(conv_bias.shape)}")
    dt = conv_weight.dtype
    # Computed in float32 (float64 for float64 weights) and cast back once, so half
    # precision weights do not round every intermediate product.
    wd = torch.float64 if dt == torch.float64 else torch.float32
    scale = torch.rsqrt(bn.running_var.to(wd) + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.to(wd)
    bias = -bn.running_mean.to(wd) if conv_bias is None else conv_bias.to(wd) - bn.running_mean.to(wd)
    bias = bias * scale
    if bn.bias is not None:
        bias = bias + bn.bias.to(wd)
    shape = (c,) + (1,) * (conv_weight.dim() - 1)
    return (conv_weight.to(wd) * scale.reshape(shape)).to(dt), bias.to(dt)
