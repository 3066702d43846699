"""FLOP formulas for effseg's custom ops, so torch.utils.flop_counter.FlopCounterMode
(and the model zoo's GFLOPs table) counts them as it counts conv and matmul.

Convention as FlopCounterMode's: 2 FLOPs per multiply-add of the op's core products;
activations and normalisers are not counted (FlopCounterMode ignores elementwise ops).
"""
from __future__ import annotations

import math

import torch
from torch.utils.flop_counter import register_flop_formula

# The op modules define the custom ops this file attaches formulas to.
from . import (  # noqa: F401
    cross_selective_scan,
    depthwise_conv2d,
    linear_attention,
    selective_scan,
    winograd_conv2d,
)

_ops = torch.ops.effseg


def _numel(shape) -> int:
    return math.prod(shape)


# Selective scan (Gu & Dao 2023), per state element and step: h = exp(dt*A) * h + (dt*u) * B
# is 2 multiply-adds and y += C * h is one: 3 MACs = 6 FLOPs times D * L * N per batch.
@register_flop_formula(_ops.selective_scan)
def _selective_scan_flops(u, delta, A, *args, out_shape=None, **kwargs) -> int:
    return 6 * _numel(delta) * A[-1]


@register_flop_formula(_ops.cross_selective_scan)
def _cross_selective_scan_flops(u, delta, A, *args, out_shape=None, **kwargs) -> int:
    return 6 * _numel(delta) * A[-1]


# Linear attention over N positions: KV = sum_n phi(k_n) v_n^T and out_n = phi(q_n) KV are
# each N * Ck * Cv multiply-adds.
@register_flop_formula(_ops.linear_attention)
def _linear_attention_flops(q, k, v, *args, out_shape=None, **kwargs) -> int:
    bt, ck, n = q
    return 2 * 2 * bt * n * ck * v[1]


@register_flop_formula(_ops.depthwise_conv2d)
def _depthwise_conv2d_flops(x, weight, *args, out_shape=None, **kwargs) -> int:
    return 2 * _numel(out_shape) * weight[-2] * weight[-1]


# Counted as the direct 3 x 3 convolution it computes (as FlopCounterMode counts
# aten.convolution), not as the fewer multiplies of the Winograd algorithm: a model's
# FLOPs do not change when a graph pass swaps the algorithm.
@register_flop_formula(_ops.winograd_conv2d)
def _winograd_conv2d_flops(x, weight, *args, out_shape=None, **kwargs) -> int:
    return 2 * _numel(out_shape) * weight[1] * 9
