"""backend="auto": a documented default per device, or a short timing trial.

Default: CUDA -> "inductor"; CPU -> "onnxruntime" when it imports (on the 2-core
anchors in ARCHITECTURE.md ORT beat torch.compile on UNetFormer, 63 vs 75 ms, and compiles
in seconds rather than minutes), else "eager". A model with selective scans (SS2D, Mamba)
stays on "onnxruntime": the backend cuts its graph at the scans and runs effseg's C++ scan
there (512^2: CM-UNet 173 ms against 176 for effseg's eager backend, CM-UNet-tiny 83
against 94, PyramidMamba 156 against 173; bench/results/compile-cpu.json). Without
effseg._C the scans would be ONNX standard ops, which ORT runs 3-18x slower than eager
(CM-UNet 3292 ms, PyramidMamba 549 ms), so such a model gets "eager".
trial=True: build every usable candidate on the example and keep the fastest median.
"""
from __future__ import annotations

import time

import torch

from .backends import BACKENDS, USABLE
from .capture import capture

CANDIDATES = {"cpu": ("eager", "inductor", "onnxruntime", "openvino"), "cuda": ("eager", "inductor", "onnxruntime")}


def has_scan(model) -> bool:
    from ..nn.mamba import Mamba
    from ..nn.ss2d import SS2D

    return any(isinstance(m, (Mamba, SS2D)) for m in model.modules())


def scan_stays_slow_in_onnx(model) -> bool:
    """Whether the model has a selective scan that ORT would run as standard ops: effseg's
    C++ scan, which the cut form runs the scans with, is missing."""
    from ..runtime import native_scan

    return has_scan(model) and not native_scan.available()


def _default(device, model=None) -> tuple[str, str]:
    if device.type == "cuda":
        ok, _ = USABLE["inductor"](device)
        if ok:
            return "inductor", "default for CUDA"
        return "eager", "default for CUDA without triton"
    if model is not None and scan_stays_slow_in_onnx(model):
        return "eager", ("default for a CPU model with a selective scan: effseg's C++ scan in "
                         "PyTorch, not the scan's ONNX form")
    ok, why = USABLE["onnxruntime"](device)
    if ok:
        if model is not None and has_scan(model):
            return "onnxruntime", ("default for CPU; the graph is cut at its selective scans, "
                                   "which effseg's C++ scan runs")
        return "onnxruntime", "default for CPU"
    return "eager", f"default for CPU without onnxruntime ({why})"


def choose(model, x, device, trial: bool) -> tuple[str, dict]:
    if not trial:
        name, why = _default(device, model)
        return name, {"chosen": name, "reason": why, "trial": None}
    from .._timing import median_ms

    timings, errors = {}, {}
    for name in CANDIDATES.get(device.type, ("eager",)):
        ok, why = USABLE[name](device)
        if not ok:
            errors[name] = why
            continue
        t0 = time.perf_counter()
        # Each backend gets the graph its own passes make (some rewrites pay off only
        # when PyTorch runs the graph).
        cap = capture(model, x, device, backend=name)
        if cap.gm is None:
            name, why = _default(device, model)
            return name, {"chosen": name, "reason": f"{why}; trial skipped: capture failed",
                          "trial": None}
        try:
            run = BACKENDS[name](cap.gm, x, device=device, options={})
            with torch.no_grad():
                t = median_ms(lambda run=run: run(x), device.type, repeats=3, warmup=2, budget_s=0.3,
                              max_repeats=10)
        except Exception as exc:  # noqa: BLE001  a candidate that fails to build is simply not chosen
            errors[name] = f"{type(exc).__name__}: {exc}"[:300]
            continue
        timings[name] = {"median_ms": t["median_ms"], "build_s": round(time.perf_counter() - t0, 3)}
    if not timings:
        return "eager", {"chosen": "eager", "reason": "trial: no candidate built", "trial": {},
                         "errors": errors}
    best = min(timings, key=lambda k: timings[k]["median_ms"])
    return best, {"chosen": best, "reason": "fastest median in a short trial on the example",
                  "trial": timings, "errors": errors}
