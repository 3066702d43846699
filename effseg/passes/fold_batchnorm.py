"""Fold an inference-mode BatchNorm into the convolution / linear layer before it.

conv -> BN(running stats) == conv with weight * s and (bias - mean) * s + beta,
s = gamma / sqrt(var + eps) (the arithmetic is effseg.ops.fold_batchnorm). Folded only
when the conv's output feeds nothing but the BN, its weight / bias and all BN tensors are
parameters of the graph, and the BN normalises the conv's output-channel dim.
"""
from __future__ import annotations

import operator

import torch
from torch import fx, nn

from ..ops.fold_batchnorm import fold_batchnorm
from ._graph import add_param, arg, aten, attr, erase_dead, is_call, shape

# Every one of these holds weight at args[1] and bias at args[2] (padding="same" is the
# .padding overload; aten.convolution is what decomposed graphs hold).
_CONVS = (aten.conv1d.default, aten.conv2d.default, aten.conv3d.default,
          aten.conv1d.padding, aten.conv2d.padding, aten.conv3d.padding)


def _bn_parts(node: fx.Node):
    """(input, weight, bias, mean, var, eps, output node) of an inference batch norm, or None."""
    if is_call(node, aten.batch_norm.default):
        x, w, b, mean, var, training, _, eps = node.args[:8]
        return None if training is not False else (x, w, b, mean, var, eps, node)
    if is_call(node, aten._native_batch_norm_legit_no_training.default):
        x, w, b, mean, var, _, eps = node.args[:7]
        users = list(node.users)
        # The op returns (out, save_mean, save_invstd); only out may be read.
        if len(users) != 1 or not (is_call(users[0], operator.getitem)
                                   and users[0].args[1] == 0):
            return None
        return x, w, b, mean, var, eps, users[0]
    return None


def _producer(gm, x):
    """(weight tensor, bias tensor or None) of the conv / linear node x if it can absorb
    a BN over its output channels, else None."""
    if not isinstance(x, fx.Node) or len(x.users) != 1:
        return None
    if is_call(x, *_CONVS) or (is_call(x, aten.convolution.default) and x.args[6] is False):
        # (a transposed convolution's weight is (C_in, C_out / groups, ...): not folded)
        w = attr(gm, x.args[1])
    elif is_call(x, aten.linear.default):
        w = attr(gm, x.args[1])
        # BatchNorm1d normalises dim 1: the features only for a (B, C) result.
        s = shape(x)
        if s is None or len(s) != 2:
            return None
    else:
        return None
    b_node = arg(x, 2, "bias")
    b = attr(gm, b_node) if b_node is not None else None
    if w is None or (b_node is not None and b is None):
        return None
    return w, b


def run(gm: fx.GraphModule, device) -> dict:
    changed = 0
    for node in list(gm.graph.nodes):
        parts = _bn_parts(node)
        if parts is None:
            continue
        x, w_n, b_n, mean_n, var_n, eps, out = parts
        prod = _producer(gm, x)
        mean, var = attr(gm, mean_n), attr(gm, var_n)
        gamma = attr(gm, w_n) if w_n is not None else None
        beta = attr(gm, b_n) if b_n is not None else None
        if (prod is None or mean is None or var is None or (w_n is not None and gamma is None)
                or (b_n is not None and beta is None) or not isinstance(eps, float)):
            continue
        weight, bias = prod
        c = weight.shape[0]
        if mean.shape != (c,) or var.shape != (c,):
            continue
        bn = nn.BatchNorm1d(c, eps=eps, affine=gamma is not None or beta is not None,
                            device=weight.device, dtype=mean.dtype)
        with torch.no_grad():
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
            if bn.affine:
                bn.weight.copy_(gamma if gamma is not None else torch.ones_like(mean))
                bn.bias.copy_(beta if beta is not None else torch.zeros_like(mean))
            new_w, new_b = fold_batchnorm(weight, bias, bn)
        w_node = add_param(gm, x, new_w, "folded_weight")
        b_node = add_param(gm, x, new_b, "folded_bias")
        old = [x.args[1], arg(x, 2, "bias")]
        args = list(x.args)
        args[1] = w_node
        if len(args) > 2:
            args[2] = b_node
        else:
            args.append(b_node)
        x.args = tuple(args)
        x.kwargs = {k: v for k, v in x.kwargs.items() if k != "bias"}
        out.replace_all_uses_with(x)
        erase_dead(gm, [out, node] + old)
        changed += 1
    return {"pass": "fold_batchnorm", "changed": changed}
