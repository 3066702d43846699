"""Depthwise conv benchmark: effseg's kernel vs F.conv2d (+ its separate activation op),
side by side in one process. Used by bench/bench_depthwise_conv.py."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .._timing import machine, median_ms
from .ops import _progress

# The shapes: a high-resolution early stage and a low-resolution late stage.
DW_SHAPES = ((1, 64, 128, 128), (1, 256, 32, 32))
DW_KERNELS = (3, 5, 7, 8)
# (name, bias, activation): the plain conv, and bias + activation fused in effseg vs
# F.conv2d(bias) followed by the activation op in PyTorch.
DW_EPILOGUES = (("none", False, None), ("bias+relu6", True, "relu6"),
                ("bias+gelu", True, "gelu"), ("bias+silu", True, "silu"))
_TORCH_ACT = {None: lambda t: t, "relu6": F.relu6, "gelu": F.gelu, "silu": F.silu}


def dw_inputs(shape, k: int, device: str, seed: int = 0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    C = shape[1]
    x = torch.randn(*shape, generator=g)
    w = torch.randn(C, 1, k, k, generator=g) / k
    b = torch.randn(C, generator=g)
    return x.to(device), w.to(device), b.to(device)


def _calls(x, w, b, act, backend):
    from ..ops import depthwise_conv2d

    C = x.shape[1]
    torch_act = _TORCH_ACT[act]

    def peer():
        with torch.no_grad():
            return torch_act(F.conv2d(x, w, b, padding="same", groups=C))

    def ours():
        with torch.no_grad():
            return depthwise_conv2d(x, w, b, padding="same", activation=act, backend=backend)

    return peer, ours


def _threads() -> tuple[int, int | None]:
    from .. import _native

    return torch.get_num_threads(), (_native.require().get_num_threads()
                                     if _native.available() else None)


def _set_threads(torch_n: int, effseg_n: int | None):
    from .. import _native

    torch.set_num_threads(torch_n)
    if effseg_n is not None and _native.available():
        _native.require().set_num_threads(effseg_n)


def bench_depthwise_conv(device: str = "cpu", shapes=DW_SHAPES, kernels=DW_KERNELS,
                         epilogues=DW_EPILOGUES, backend: str | None = None, repeats: int = 5,
                         progress: bool = True, threads: int | None = None) -> dict:
    """Median times of F.conv2d(+act) and effseg's depthwise_conv2d, stride 1, padding
    "same", float32, batch as given; ratio = torch / effseg (> 1: effseg faster).
    threads: CPU threads for both (None: their defaults)."""
    if backend is None:
        backend = "cpp" if device == "cpu" else "triton"
    prev = _threads()
    if threads is not None and device == "cpu":
        _set_threads(threads, threads)
    try:
        return _bench(device, shapes, kernels, epilogues, backend, repeats, progress)
    finally:
        _set_threads(*prev)


def _bench(device, shapes, kernels, epilogues, backend, repeats, progress) -> dict:
    rows = []
    bar = _progress(len(shapes) * len(kernels) * len(epilogues), progress)
    import warnings

    for shape in shapes:
        for k in kernels:
            x, w, b = dw_inputs(shape, k, device)
            for name, with_bias, act in epilogues:
                peer, ours = _calls(x, w, b if with_bias else None, act, backend)
                err = (peer() - ours()).abs().max().item()
                with warnings.catch_warnings():  # "same" with even kernels: a pad copy
                    warnings.simplefilter("ignore")
                    t_peer = median_ms(peer, device, repeats=repeats)
                t_ours = median_ms(ours, device, repeats=repeats)
                rows.append({"shape": list(shape), "k": k, "epilogue": name,
                                 "torch_ms": t_peer["median_ms"], "effseg_ms": t_ours["median_ms"],
                                 "torch": t_peer, "effseg": t_ours,
                                 "ratio": t_peer["median_ms"] / t_ours["median_ms"],
                                 "max_abs_diff": err})
                bar(f"{tuple(shape)} k={k} {name}: x{rows[-1]['ratio']:.2f}")
    t_torch, t_effseg = _threads()
    threads = {"torch": t_torch, "effseg": t_effseg}
    return {"op": "depthwise_conv2d", "device": device, "backend": backend, "machine": machine(device),
            "threads": threads,
                "setup": {"dtype": "float32", "stride": 1, "padding": "same", "dilation": 1,
                           "peer": "F.conv2d(x, w, bias, groups=C) then the activation op "
                                "(torch.nn.functional), no_grad"},
                "method": (f"median of at least {repeats} timed calls (more for fast calls: ~0.5 s "
                        "of timing, up to 50) after 2 warm-ups, side by side in one process"),
                "results": rows}
