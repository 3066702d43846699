"""Model-zoo latency: each model in eval mode with effseg's kernels (backend="auto") vs the
same architecture and weights on the reference ops (backend="ref"), side by side."""
from __future__ import annotations

import torch

from .._timing import machine, median_ms
from .ops import _progress


def _open_gates(model, value: float = 0.5) -> None:
    """Attention gates (GeoSeg's gamma) start at 0, which makes the attention output
    vanish from the parity check; open them, as training does, identically in both."""
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.rsplit(".", 1)[-1] == "gamma":
                p.fill_(value)


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
            _open_gates(m)
        with torch.no_grad():
            t_ref = median_ms(lambda: ref(x), device, repeats=repeats)
            bar(f"{name} ref {t_ref['median_ms']:.0f} ms")
            t_fast = median_ms(lambda: fast(x), device, repeats=repeats)
            bar(f"{name} effseg {t_fast['median_ms']:.0f} ms")
            want, got = ref(x), fast(x)
        err = ((got - want).abs().max() / want.abs().max().clamp_min(1e-12)).item()
        rows.append(dict(model=name, params_m=round(count_parameters(fast) / 1e6, 3),
                         effseg_ms=t_fast["median_ms"], ref_ms=t_ref["median_ms"],
                         effseg_fps=1e3 * batch / t_fast["median_ms"],
                         speedup_vs_ref=t_ref["median_ms"] / t_fast["median_ms"],
                         max_rel_err_vs_ref=err, effseg_timing=t_fast, ref_timing=t_ref))
    return dict(bench="models", device=device, machine=machine(device),
                input=dict(batch=batch, channels=3, height=size, width=size,
                           dtype="float32", num_classes=num_classes),
                method=(f"eager PyTorch, torch.no_grad, eval mode; median of at least "
                        f"{repeats} timed forward passes (3 when a pass takes over 1 s) "
                        "after 2 warm-ups; the effseg and reference variants of a model "
                        "share weights (same seed) and run side by side in one process; "
                        f"torch threads: {torch.get_num_threads()}"),
                results=rows)
