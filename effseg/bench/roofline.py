"""How close an engine already runs a model to the CPU's float32 arithmetic peak, per op
class, from OpenVINO's per-node profile: the headroom any float32 kernel (effseg's
included) could still win without doing fewer multiplies (bench/bench_roofline.py).

FLOPs count a multiply-add as 2, from the shapes of OpenVINO's executed graph (fused
bias / activation / residual nodes keep the type of their convolution or matmul).
"""
from __future__ import annotations

import math

# Node types whose FLOPs are counted (the dense products); every other node is "other".
DENSE = ("Convolution", "GroupConvolution", "ConvolutionBackpropData", "MatMul", "FullyConnected")


def _prod(dims) -> int:
    return int(math.prod(int(d) for d in dims))


def dense_flops(node_type: str, inputs: list, output: list) -> int | None:
    """Multiply-add FLOPs (x2) of one executed node, from its input shapes (data first,
    then weights) and its output shape; None for a node type that is not a dense product
    or whose shapes are not static.

    Convolution: weight (K, C, kh, kw), output (N, K, ...): 2 * |out| * C * kh * kw.
    GroupConvolution: weight (G, K/G, C/G, kh, kw): 2 * |out| * C/G * kh * kw.
    ConvolutionBackpropData (transposed conv): weight (C_in, K, kh, kw): every input
    element is spread over K * kh * kw outputs: 2 * |in| * K * kh * kw.
    MatMul / FullyConnected: 2 * |out| * k, k the contracted length, read from the first
    input's last dimension (OpenVINO's executed MatMul holds any transposition in its
    attributes, so k is the one dimension the first input shares with neither output
    dimension when its last does not fit)."""
    if node_type not in DENSE:
        return None
    if not inputs or any(d is None for s in inputs[:2] for d in s) or any(d is None for d in output):
        return None
    out = _prod(output)
    if node_type == "Convolution":
        w = inputs[1]
        return 2 * out * _prod(w[1:])
    if node_type == "GroupConvolution":
        w = inputs[1]
        return 2 * out * _prod(w[2:])
    if node_type == "ConvolutionBackpropData":
        w = inputs[1]
        return 2 * _prod(inputs[0]) * _prod(w[1:])
    a = inputs[0]
    if len(a) == 0:
        return None
    k = a[-1]
    if len(a) >= 2 and len(output) >= 2 and a[-2] != output[-2] and a[-1] == output[-2]:
        k = a[-2]  # the first input is transposed
    return 2 * out * int(k)


def summarise(nodes: list, peak_gflops: float) -> dict:
    """nodes: [{"type", "ms", "flops" (None for others)}] of one inference. Returns the
    time and FLOP split, the dense products' achieved rate and fraction of the peak, and
    two bounds on a float32 engine's time relative to this one: every dense product at
    the peak with the rest unchanged ("dense_at_peak"), and the dense products at the
    peak with the rest free ("dense_only_at_peak", the arithmetic floor)."""
    if not peak_gflops > 0:
        raise ValueError(f"peak_gflops must be > 0, got {peak_gflops!r}")
    total = sum(n["ms"] for n in nodes)
    if not total > 0:
        raise ValueError("the profile holds no time")
    dense = [n for n in nodes if n.get("flops")]
    dense_ms = sum(n["ms"] for n in dense)
    flops = sum(n["flops"] for n in dense)
    floor_ms = flops / (peak_gflops * 1e9) * 1e3
    by_type: dict = {}
    for n in nodes:
        t = by_type.setdefault(n["type"], {"ms": 0.0, "gflop": 0.0})
        t["ms"] += n["ms"]
        t["gflop"] += (n.get("flops") or 0) / 1e9
    for t in by_type.values():
        t["gflops_per_s"] = round(t["gflop"] / (t["ms"] / 1e3), 1) if t["gflop"] and t["ms"] else None
        t["ms"], t["gflop"] = round(t["ms"], 3), round(t["gflop"], 3)
    rate = flops / 1e9 / (dense_ms / 1e3) if dense_ms else 0.0
    return {
        "profiled_ms": round(total, 3),
        "dense_ms": round(dense_ms, 3),
        "dense_share": round(dense_ms / total, 4),
        "dense_gflop": round(flops / 1e9, 3),
        "dense_gflops_per_s": round(rate, 1),
        "dense_fraction_of_peak": round(rate / peak_gflops, 3),
        "bound_dense_at_peak": round((floor_ms + total - dense_ms) / total, 3),
        "bound_dense_only_at_peak": round(floor_ms / total, 3),
        "by_type": dict(sorted(by_type.items(), key=lambda kv: -kv[1]["ms"])),
    }
