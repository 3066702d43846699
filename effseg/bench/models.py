"""Model-zoo latency in eager PyTorch: each model with effseg's kernels (backend="auto") vs
the same architecture and weights on the reference ops (backend="ref"), side by side.

Not `effseg bench` (model_bench.py), which times one model on several compilers and
runtimes: here the model's own ops differ, which no backend of that benchmark expresses.
The gates, the parity figures (against the reference-op model) and the timing are
model_bench's and _timing's.
"""
from __future__ import annotations

import torch

from .._timing import machine, median_ms
from .model_bench import _row_parity, open_gates
from .progress import progress as _progress


def bench_models(names=None, device: str = "cpu", size: int = 512, batch: int = 1,
                 repeats: int = 5, num_classes: int = 6, progress: bool = True) -> dict:
    from ..models import count_parameters, create_model, list_models

    names = list_models() if names is None else list(names)
    bar = _progress(2 * len(names), progress)
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
    rows = []
    for name in names:
        fast = create_model(name, num_classes, backend="auto").eval().to(device)
        ref = create_model(name, num_classes, backend="ref").eval().to(device)
        for m in (fast, ref):
            open_gates(m)
        with torch.no_grad():
            t_ref = median_ms(lambda: ref(x), device, repeats=repeats)
            bar(f"{name} ref {t_ref['median_ms']:.0f} ms")
            t_fast = median_ms(lambda: fast(x), device, repeats=repeats)
            bar(f"{name} effseg {t_fast['median_ms']:.0f} ms")
            parity = _row_parity(ref(x), fast(x))
        rows.append(dict(model=name, params_m=round(count_parameters(fast) / 1e6, 3),
                         effseg_ms=t_fast["median_ms"], ref_ms=t_ref["median_ms"],
                         effseg_fps=1e3 * batch / t_fast["median_ms"],
                         speedup_vs_ref=t_ref["median_ms"] / t_fast["median_ms"],
                         max_rel_err_vs_ref=parity["rel_err"],
                         argmax_agreement_vs_ref=parity["argmax_agreement"],
                         effseg_timing=t_fast, ref_timing=t_ref))
    return dict(bench="models", device=device, machine=machine(device),
                input=dict(batch=batch, channels=3, height=size, width=size,
                           dtype="float32", num_classes=num_classes),
                method=(f"eager PyTorch, torch.no_grad, eval mode; median of at least "
                        f"{repeats} timed forward passes (3 when a pass takes over 1 s) "
                        "after 2 warm-ups; the effseg and reference variants of a model "
                        "share weights (same seed) and run side by side in one process; "
                        f"torch threads: {torch.get_num_threads()}"),
                results=rows)
