"""Replace depthwise aten.conv2d (groups == C_in == C_out) by effseg's depthwise_conv2d op
where effseg's kernel is the faster one.

The decision: on CPU the C++ kernel beats PyTorch's grouped convolution for kernels of
5 x 5 and up (bench/bench_depthwise_conv2d.py); for 3 x 3 and on CUDA (cuDNN) PyTorch's own
kernel is kept. float32 / float64 only (the C++ kernel's dtypes). Only for graphs PyTorch
runs: for an exported graph (onnxruntime, tensorrt) the op's ONNX lowering is the same
grouped Conv the untouched node exports to, so the swap would change nothing there.
"""
from __future__ import annotations

import torch
from torch import fx

from ..ops.depthwise_conv2d import MAX_KERNEL
from ._graph import arg, attr, cpu_convs, erase_dead, int_pair, val

MIN_FAST_KERNEL = 5
BACKENDS = ("eager", "inductor")


def _match(gm, node):
    """The op's arguments for a depthwise conv2d node effseg can run, or a reason it can't."""
    x, w_n = node.args[0], node.args[1]
    xv, w = val(x), val(w_n)
    if w is None:
        w = attr(gm, w_n)
    if not isinstance(xv, torch.Tensor) or not isinstance(w, torch.Tensor) or xv.dim() != 4:
        return None, "shape unknown"
    groups = arg(node, 6, "groups", 1)
    c = xv.shape[1]
    if not (isinstance(groups, int) and groups > 1 and groups == c and tuple(w.shape[:2]) == (c, 1)):
        return None, None  # not depthwise: not counted
    kh, kw = int(w.shape[2]), int(w.shape[3])
    if xv.dtype not in (torch.float32, torch.float64) or w.dtype != xv.dtype:
        return None, f"dtype {xv.dtype}"
    if max(kh, kw) < MIN_FAST_KERNEL or max(kh, kw) > MAX_KERNEL:
        return None, f"kernel {kh}x{kw}"
    b_n = arg(node, 2, "bias")
    bv = val(b_n) if b_n is not None else None
    if b_n is not None and (not isinstance(bv, torch.Tensor) or bv.dtype != xv.dtype):
        return None, "bias"
    stride, pad, dil = (int_pair(arg(node, i, n, d)) for i, n, d in
                        ((3, "stride", 1), (4, "padding", 0), (5, "dilation", 1)))
    if stride is None or pad is None or dil is None or min(stride + dil) < 1 or min(pad) < 0:
        return None, "stride / padding / dilation"
    padding = [pad[0], pad[0], pad[1], pad[1]]
    return (x, w_n, b_n, stride, padding, dil), None


def run(gm: fx.GraphModule, device, backend: str = "eager") -> dict:
    changed, reasons = 0, {}
    veto = None if backend in BACKENDS else (lambda: f"backend {backend}: exported as a grouped Conv either way")
    for node, m in cpu_convs(gm, _match, device, reasons, veto):
        x, w_n, b_n, stride, padding, dil = m
        with gm.graph.inserting_before(node):
            new = gm.graph.call_function(torch.ops.effseg.depthwise_conv2d.default,
                                         (x, w_n, b_n, stride, padding, dil, 0, "auto"))
        new.meta = dict(node.meta)
        node.replace_all_uses_with(new)
        erase_dead(gm, [node])
        changed += 1
    rec = {"pass": "depthwise_conv2d", "changed": changed, "kept": sum(reasons.values()),
           "rule": f"CPU, float32/64, kernel >= {MIN_FAST_KERNEL}, backends {list(BACKENDS)}"}
    if reasons:
        rec["kept_because"] = reasons
    return rec
