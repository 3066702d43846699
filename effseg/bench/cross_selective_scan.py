"""The cross selective scan where it runs, inside SS2D (VMamba's 2-D selective-scan block)
at CM-UNet's decoder stages: effseg's block (the fused cross_selective_scan) vs the same
block composed VMamba's way (four copies, grouped scan, merge) on the reference scan and
on the C++ scan (chunked on GPU), side by side."""
from __future__ import annotations

from typing import Optional

import torch

from .._timing import machine, median_ms
from .progress import progress as _progress

# The SS2D inside each CM-UNet decoder stage for a 512x512 input: VSSBlock(dim) halves
# dim to d_model and SS2D uses expand 0.5 (d_inner = dim / 4), d_state 16; ResNet-18
# stages 512/256/128/64 channels at 16x16 ... 128x128.
CMUNET_STAGES_512 = ((256, 16), (128, 32), (64, 64), (32, 128))
QUICK_STAGES = ((64, 64),)


def _block(d_model: int, side: int, device: str, seed: int = 0):
    from ..nn import SS2D

    torch.manual_seed(seed)
    m = SS2D(d_model, d_state=16, expand=0.5).eval().to(device)
    x = torch.randn(1, side, side, d_model, device=device)
    return m, x


def _run(m, x, core: Optional[str]):
    """m(x) with the fused core (core None) or the composition on backend `core`."""
    from ..nn.ss2d import ss2d_core_composed

    if core is None:
        return m(x)
    m.forward_core = lambda xx: ss2d_core_composed(m, xx, core)
    try:
        return m(x)
    finally:
        del m.forward_core


def bench_cross_selective_scan(device: str = "cpu", stages=CMUNET_STAGES_512, repeats: int = 5,
               progress: bool = True) -> dict:
    variants = (("composed_ref", "ref"), ("composed_cpp", "cpp"), ("effseg", None))
    if device != "cpu":
        variants = (("composed_ref", "ref"), ("composed_chunked", "chunked"),
                    ("effseg", None))
    bar = _progress(len(stages) * len(variants), progress)
    rows = []
    for d_model, side in stages:
        m, x = _block(d_model, side, device)
        with torch.no_grad():
            want = _run(m, x, "ref")
            times = {}
            for name, core in variants:
                t = median_ms(lambda: _run(m, x, core), device, repeats=repeats)
                got = _run(m, x, core)
                err = ((got - want).abs().max() / want.abs().max()).item()
                times[name] = t["median_ms"]
                rows.append(dict(d_model=d_model, d_inner=m.d_inner, H=side, W=side,
                                 scan_channels=4 * m.d_inner, L=side * side, variant=name,
                                 max_rel_err_vs_composed_ref=err, **t))
                bar(f"{d_model}@{side}x{side} {name}: {t['median_ms']:.2f} ms")
        for r in rows[-len(variants):]:
            r["speedup_vs_composed_ref"] = times["composed_ref"] / r["median_ms"]
    return dict(op="cross_selective_scan", device=device, machine=machine(device),
                shape=dict(batch=1, d_state=16, expand=0.5, dtype="float32",
                           stages="CM-UNet decoder SS2D for a 512x512 input"),
                method=(f"median of at least {repeats} timed calls of the whole SS2D block "
                        "(more for fast calls; 3 when a call takes over 1 s) after 2 "
                        "warm-ups, torch.no_grad, side by side in one process"),
                results=rows)


QUICK_HELP = "one stage (64 channels at 64x64)"


def run(args) -> dict:
    return bench_cross_selective_scan(args.device, QUICK_STAGES if args.quick else CMUNET_STAGES_512,
                                      repeats=args.repeats)


def targets(result: dict) -> dict:
    """The issue's CPU target: SS2D >= 20x an SS2D built on the reference scan."""
    fused = [r for r in result["results"] if r["variant"] == "effseg"]
    worst = min(r["speedup_vs_composed_ref"] for r in fused)
    return {"min_speedup_vs_composed_ref": worst, "speedup_met": worst >= 20,
            "max_rel_err": max(r["max_rel_err_vs_composed_ref"] for r in fused)}
