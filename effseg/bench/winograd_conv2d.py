"""Winograd conv benchmark: effseg's winograd_conv2d (C++ transforms + torch.bmm on CPU,
Triton on CUDA) vs F.conv2d (oneDNN on CPU) and the op's reference, side by side in one
process."""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from .._timing import machine, median_ms
from .progress import progress as _progress

# The 3 x 3 layers of a ResNet-18 UNetFormer at a 512 x 512 input, batch 1, as
# (in_channels, out_channels, H, W), plus one odd shape.
WINO_SHAPES = ((64, 64, 128, 128), (128, 128, 64, 64), (256, 256, 32, 32),
               (512, 512, 16, 16), (64, 64, 256, 256), (96, 64, 97, 75))
WINO_QUICK_SHAPES = ((32, 32, 32, 32), (48, 40, 23, 29))
# (name, bias, relu): the plain conv, and conv + bias + ReLU (fused in effseg; F.conv2d
# with its bias, then F.relu).
WINO_EPILOGUES = (("none", False, False), ("bias+relu", True, True))


def wino_inputs(shape, device: str, seed: int = 0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    C, K, H, W = shape
    x = torch.randn(1, C, H, W, generator=g)
    w = torch.randn(K, C, 3, 3, generator=g) / (3 * C ** 0.5)
    b = torch.randn(K, generator=g)
    return x.to(device), w.to(device), b.to(device)


def _calls(x, w, wt, b, relu, backend):
    from ..ops import winograd_conv2d

    def peer():
        with torch.no_grad():
            y = F.conv2d(x, w, b, padding=1)
            return F.relu(y) if relu else y

    def ours():
        with torch.no_grad():
            return winograd_conv2d(x, w, b, 1, relu, weight_t=wt, backend=backend)

    def ref():
        with torch.no_grad():
            return winograd_conv2d(x, w, b, 1, relu, weight_t=wt, backend="ref")

    return peer, ours, ref


def bench_winograd_conv2d(device: str = "cpu", shapes=WINO_SHAPES, epilogues=WINO_EPILOGUES,
                          backend: str | None = None, repeats: int = 5, progress: bool = True) -> dict:
    """Median times of F.conv2d(+relu), effseg's winograd_conv2d and its reference
    backend, padding 1, float32, batch 1; ratio = F.conv2d / winograd (> 1: faster)."""
    if backend is None:
        backend = "cpp" if device == "cpu" else "triton"
    return _bench(device, shapes, epilogues, backend, repeats, progress)


def _bench(device, shapes, epilogues, backend, repeats, progress) -> dict:
    from ..ops import winograd_weight

    rows = []
    bar = _progress(len(shapes) * len(epilogues), progress)
    for shape in shapes:
        x, w, b = wino_inputs(shape, device)
        t0 = time.perf_counter()
        wt = winograd_weight(w)  # the one-off weight transform, timed once
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        weight_ms = (time.perf_counter() - t0) * 1e3
        for name, with_bias, relu in epilogues:
            peer, ours, ref = _calls(x, w, wt, b if with_bias else None, relu, backend)
            want = peer()
            err = ((ours() - want).abs().max() / want.abs().max()).item()
            t_peer = median_ms(peer, device, repeats=repeats)
            t_ours = median_ms(ours, device, repeats=repeats)
            t_ref = median_ms(ref, device, repeats=repeats)
            rows.append({"shape": list(shape), "epilogue": name,
                         "conv2d_ms": t_peer["median_ms"], "winograd_ms": t_ours["median_ms"],
                         "ref_ms": t_ref["median_ms"],
                         "conv2d": t_peer, "winograd": t_ours, "ref": t_ref,
                         "ratio": t_peer["median_ms"] / t_ours["median_ms"],
                         "winograd_weight_ms_once": weight_ms,
                         "max_err_rel_to_max": err})
            bar(f"{tuple(shape)} {name}: x{rows[-1]['ratio']:.2f}")
    return {"op": "winograd_conv2d", "device": device, "backend": backend, "machine": machine(device),
            "setup": {"dtype": "float32", "batch": 1, "padding": 1, "stride": 1,
                      "shape": "(in_channels, out_channels, H, W)",
                      "peer": "F.conv2d(x, w, bias, padding=1) then F.relu where fused, no_grad",
                      "ref": "winograd_conv2d(..., backend='ref'): the op's reference (F.conv2d)",
                      "weight_t": "precomputed (winograd_weight), as a graph pass passes it"},
            "method": (f"median of at least {repeats} timed calls (more for fast calls: ~0.5 s "
                       "of timing, up to 50) after 2 warm-ups, side by side in one process"),
            "results": rows}


TARGET_RATIO = 1.5  # the CPU target: >= 1.5x F.conv2d for the 64-256-channel layers
TARGET_CHANNELS = (64, 256)
QUICK_HELP = "two small shapes"


def run(args) -> dict:
    shapes = WINO_QUICK_SHAPES if args.quick else WINO_SHAPES
    return bench_winograd_conv2d(args.device, shapes, WINO_EPILOGUES, repeats=args.repeats)


def targets(result: dict) -> dict:
    """The issue's CPU target: winograd >= 1.5x faster than F.conv2d (+ relu) for every
    layer with 64 to 256 input channels, both epilogues."""
    lo, hi = TARGET_CHANNELS
    rows = [r for r in result["results"] if lo <= r["shape"][0] <= hi]
    flags = {f"{'x'.join(map(str, r['shape']))} {r['epilogue']}": r["ratio"] >= TARGET_RATIO
             for r in rows}
    return {"target": f"winograd >= {TARGET_RATIO}x F.conv2d for {lo}-{hi}-channel layers",
            "target_ratio": TARGET_RATIO,
            "ratios": {f"{'x'.join(map(str, r['shape']))} {r['epilogue']}": round(r["ratio"], 3)
                       for r in result["results"]},
            "min_ratio_64_256ch": min((r["ratio"] for r in rows), default=None),
            "met": flags,
            "all_met": bool(flags) and all(flags.values())}
