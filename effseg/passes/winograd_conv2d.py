"""Replace 3x3 stride-1 aten.conv2d (and a ReLU right after it) by effseg's
winograd_conv2d op where that op is the faster one.

Winograd F(4x4, 3x3) (Lavin & Gray, CVPR 2016) does 36 multiplies per 4x4 output tile
per channel pair where a direct convolution does 144. The decision follows
bench/bench_winograd_conv2d.py: on CPU, float32, groups 1, stride 1, dilation 1, with
enough channels for the batched GEMMs to run at speed; on CUDA cuDNN already picks
Winograd itself, so PyTorch's kernel is kept. The transformed weight is computed once
here and stored on the graph; the original weight stays too (the ONNX lowering and the
autograd formula use it).

For effseg.compile's "openvino" backend the op is translated into a Winograd graph of
standard ONNX nodes (effseg.export.winograd_conv2d) and taken only from 128 channels:
below that the transforms' memory traffic cost more than the products saved
(bench/bench_winograd_conv2d_onnx.py: 64 channels at 128^2 0.82x OpenVINO's own conv,
128 channels 1.08-1.09x). ONNX Runtime ran the graph at 0.42-0.74x its own conv below
256 channels and 1.02-1.10x from 256 (same bench), and no faster inside UNetFormer 512^2
(a spot check: 1.02x the time from 256 channels); TensorRT picks its own algorithms
(Winograd among them): their graphs keep plain Conv nodes. Autotune decides per model whether the rewrite stays.
"""
from __future__ import annotations

import functools

import torch
from torch import fx

from ._graph import (
    add_param,
    arg,
    aten,
    attr,
    cpu_convs,
    erase_dead,
    int_pair,
    is_call,
    val,
)

# Below these the 36 GEMMs are too small to beat oneDNN's direct kernel (see the bench).
MIN_CHANNELS = 16
MIN_OUTPUT_PIXELS = 16 * 16
# The least channel count (in and out) per backend: effseg's C++ op under PyTorch; the
# ONNX Winograd graph, whose transforms go through memory, needs more channels to pay.
MIN_CHANNELS_BY_BACKEND = {"eager": MIN_CHANNELS, "inductor": MIN_CHANNELS, "openvino": 128}
BACKENDS = tuple(MIN_CHANNELS_BY_BACKEND)
_RELUS = (aten.relu.default, aten.relu_.default)


def _match(gm, node, min_channels=MIN_CHANNELS):
    """(x, weight node, weight, bias node, pad_h, pad_w) or (None, reason); reason None means
    "not a 3x3 dense conv at all" (not counted)."""
    x, w_n = node.args[0], node.args[1]
    xv, w = val(x), attr(gm, w_n)
    if not isinstance(w, torch.Tensor) or w.dim() != 4 or tuple(w.shape[2:]) != (3, 3):
        return None, None
    if arg(node, 6, "groups", 1) != 1:
        return None, None
    if not isinstance(xv, torch.Tensor) or xv.dim() != 4:
        return None, "shape unknown"
    if xv.dtype != torch.float32 or w.dtype != torch.float32:
        return None, f"dtype {xv.dtype}"
    stride, pad, dil = (int_pair(arg(node, i, n, d)) for i, n, d in
                        ((3, "stride", 1), (4, "padding", 0), (5, "dilation", 1)))
    if stride != [1, 1] or dil != [1, 1] or pad is None or min(pad) < 0:
        return None, "stride / dilation / padding"
    k, c = int(w.shape[0]), int(w.shape[1])
    ho, wo = xv.shape[2] + 2 * pad[0] - 2, xv.shape[3] + 2 * pad[1] - 2
    if not all(isinstance(d, int) for d in (ho, wo)):
        return None, "symbolic size"
    if min(c, k) < min_channels or ho * wo < MIN_OUTPUT_PIXELS:
        return None, "too small to gain"
    b_n = arg(node, 2, "bias")
    if b_n is not None and attr(gm, b_n) is None:
        return None, "bias not a constant"
    return (x, w_n, w, b_n, pad[0], pad[1]), None


def run(gm: fx.GraphModule, device, backend: str = "eager") -> dict:
    from ..ops.winograd_conv2d import winograd_weight

    changed, fused, reasons = 0, 0, {}
    veto = None if backend in BACKENDS else (lambda: f"backend {backend}: its own conv algorithms")
    least = MIN_CHANNELS_BY_BACKEND.get(backend, MIN_CHANNELS)
    match = functools.partial(_match, min_channels=least)
    for node, m in cpu_convs(gm, match, device, reasons, veto):
        x, w_n, w, b_n, ph, pw = m
        users = list(node.users)
        relu = users[0] if len(users) == 1 and is_call(users[0], *_RELUS) else None
        wt_n = add_param(gm, node, winograd_weight(w), "winograd_weight")
        with gm.graph.inserting_before(node):
            new = gm.graph.call_function(torch.ops.effseg.winograd_conv2d.default,
                                         (x, w_n, wt_n, b_n, ph, pw, relu is not None))
        out = relu if relu is not None else node
        new.meta = dict(out.meta)
        out.replace_all_uses_with(new)
        erase_dead(gm, [out, node] if relu is not None else [node])
        changed += 1
        fused += relu is not None
    rec = {"pass": "winograd_conv2d", "changed": changed, "relu_fused": fused, "kept": sum(reasons.values()),
           "rule": f"CPU, float32, 3x3 stride 1, groups 1, channels >= {least}, "
                   f"output >= {MIN_OUTPUT_PIXELS} px, backends {list(BACKENDS)}"}
    if reasons:
        rec["kept_because"] = reasons
    return rec
