"""Depthwise conv benchmark: effseg's kernel vs F.conv2d (+ its separate activation op),
side by side in one process, stride 1, padding "same", float32, at a high-resolution early
stage and a low-resolution late stage."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .._timing import machine, median_ms
from .progress import progress as _progress

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


def bench_depthwise_conv2d(device: str = "cpu", shapes=DW_SHAPES, kernels=DW_KERNELS,
                           epilogues=DW_EPILOGUES, backend: str | None = None, repeats: int = 5,
                           progress: bool = True) -> dict:
    """Median times of F.conv2d(+act) and effseg's depthwise_conv2d, stride 1, padding
    "same", float32, batch as given; ratio = torch / effseg (> 1: effseg faster)."""
    if backend is None:
        backend = "cpp" if device == "cpu" else "triton"
    return _bench(device, shapes, kernels, epilogues, backend, repeats, progress)


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
    return {"op": "depthwise_conv2d", "device": device, "backend": backend, "machine": machine(device),
                "setup": {"dtype": "float32", "stride": 1, "padding": "same", "dilation": 1,
                           "peer": "F.conv2d(x, w, bias, groups=C) then the activation op "
                                "(torch.nn.functional), no_grad"},
                "method": (f"median of at least {repeats} timed calls (more for fast calls: ~0.5 s "
                        "of timing, up to 50) after 2 warm-ups, side by side in one process"),
                "results": rows}


TARGET_RATIO = 1.5  # the CPU target: >= 1.5x F.conv2d (+ activation) for k >= 5
QUICK_HELP = "one small shape, k=5 only"


def add_arguments(p) -> None:
    p.add_argument("--kernels", type=int, nargs="+", default=list(DW_KERNELS), help="kernel sizes")


def run(args) -> dict:
    shapes, kernels = (((1, 16, 32, 32),), (5,)) if args.quick else (DW_SHAPES, tuple(args.kernels))
    return bench_depthwise_conv2d(args.device, shapes, kernels, DW_EPILOGUES, repeats=args.repeats)


def targets(result: dict) -> dict:
    """The issue's CPU target: effseg >= 1.5x faster than F.conv2d (+ the separate
    activation op where fused) for k >= 5 at both shapes, every epilogue."""
    rows = [r for r in result["results"] if r["k"] >= 5]
    if not rows:
        return {}
    flags = {f"{'x'.join(map(str, r['shape']))} k={r['k']} {r['epilogue']}": r["ratio"] >= TARGET_RATIO
             for r in rows}
    plain = [r["ratio"] for r in rows if r["epilogue"] == "none"]
    return {"target_ratio": TARGET_RATIO,
            "min_ratio_k>=5": min(r["ratio"] for r in rows),
            "min_ratio_k>=5_plain_conv": min(plain) if plain else None,
            "ratio_k3": {f"{'x'.join(map(str, r['shape']))} {r['epilogue']}": r["ratio"]
                         for r in result["results"] if r["k"] == 3},
            "met": flags,
            "all_met": all(flags.values())}
