"""Winograd conv benchmark: effseg's winograd_conv2d (C++ transforms + torch.bmm on CPU,
Triton on CUDA) vs F.conv2d (oneDNN on CPU) and the op's reference, side by side in one
process. Used by bench/bench_winograd_conv2d.py."""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from .._timing import machine, median_ms
from .ops import _progress

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


def _threads() -> tuple[int, int | None]:
    from .. import _native

    return torch.get_num_threads(), (_native.require().get_num_threads()
                                     if _native.available() else None)


def _set_threads(torch_n: int, effseg_n: int | None):
    from .. import _native

    torch.set_num_threads(torch_n)
    if effseg_n is not None and _native.available():
        _native.require().set_num_threads(effseg_n)


def bench_winograd_conv2d(device: str = "cpu", shapes=WINO_SHAPES, epilogues=WINO_EPILOGUES,
                          backend: str | None = None, repeats: int = 5, progress: bool = True,
                          threads: int | None = None) -> dict:
    """Median times of F.conv2d(+relu), effseg's winograd_conv2d and its reference
    backend, padding 1, float32, batch 1; ratio = F.conv2d / winograd (> 1: faster).
    threads: CPU threads for torch and effseg both (None: their defaults)."""
    if backend is None:
        backend = "cpp" if device == "cpu" else "triton"
    prev = _threads()
    if threads is not None and device == "cpu":
        _set_threads(threads, threads)
    try:
        return _bench(device, shapes, epilogues, backend, repeats, progress)
    finally:
        _set_threads(*prev)


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
    t_torch, t_effseg = _threads()
    return {"op": "winograd_conv2d", "device": device, "backend": backend,
            "machine": machine(device), "threads": {"torch": t_torch, "effseg": t_effseg},
            "setup": {"dtype": "float32", "batch": 1, "padding": 1, "stride": 1,
                      "shape": "(in_channels, out_channels, H, W)",
                      "peer": "F.conv2d(x, w, bias, padding=1) then F.relu where fused, no_grad",
                      "ref": "winograd_conv2d(..., backend='ref'): the op's reference (F.conv2d)",
                      "weight_t": "precomputed (winograd_weight), as a graph pass passes it"},
            "method": (f"median of at least {repeats} timed calls (more for fast calls: ~0.5 s "
                       "of timing, up to 50) after 2 warm-ups, side by side in one process"),
            "results": rows}
