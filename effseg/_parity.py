"""The one comparison of an output with the output it must reproduce, used by
effseg.compile (compiled vs eager), effseg.export (ONNX Runtime vs PyTorch) and
effseg bench (every row vs fp32 eager).

fp32: max |got - want| <= 1e-4 x output scale (max |want|).
fp16 / bf16: argmax over dim 1 (the classes) agrees on >= 99.5% of pixels and
max |got - want| <= LOGIT_TOL[dtype] x output scale.
labels=True: `got` holds class ids (an argmax head), compared with want.argmax(1).
"""
from __future__ import annotations

import math

import torch
from torch.utils._pytree import tree_flatten

FP32_TOL = 1e-4
ARGMAX_AGREEMENT = 0.995
LOGIT_TOL = {torch.float16: 2e-2, torch.bfloat16: 1e-1}


class ParityError(RuntimeError):
    """An output disagrees with the one it must reproduce; `.figures` holds the measurements."""

    def __init__(self, message: str, figures: dict):
        super().__init__(message)
        self.figures = figures


def _leaves(out) -> list:
    leaves, _ = tree_flatten(out)
    return [torch.as_tensor(t) for t in leaves if isinstance(t, torch.Tensor) or hasattr(t, "__array__")]


def _label_figures(want: torch.Tensor, got: torch.Tensor) -> dict:
    labels = want.argmax(1)
    if got.shape != labels.shape:
        raise ValueError(f"label output shape {tuple(got.shape)}, expected {tuple(labels.shape)}")
    agree = (got.long() == labels).double().mean().item() if labels.numel() else 1.0
    return {"argmax_agreement": agree, "argmax_required": ARGMAX_AGREEMENT, "finite": True,
            "ok": agree >= ARGMAX_AGREEMENT}


def parity_figures(want, got, dtype: torch.dtype = torch.float32, *, labels: bool = False) -> dict:
    """Compare `got` with `want` (tensors, arrays, or nests of tensors of one structure).

    Returns max_abs_err, scale, rel_err, finite, argmax_agreement (None without a class
    dim), tolerance and the verdict `ok`. Raises ValueError when the structures or
    shapes differ: there is nothing to measure then.
    """
    ws, gs = _leaves(want), _leaves(got)
    if len(ws) != len(gs):
        raise ValueError(f"{len(gs)} outputs, expected {len(ws)}")
    fig = {"dtype": str(dtype).replace("torch.", "")}
    if labels:
        if len(ws) != 1:
            raise ValueError(f"labels=True compares one output, got {len(ws)}")
        return {**fig, **_label_figures(ws[0].detach().cpu(), gs[0].detach().cpu())}
    err = scale = 0.0
    agree_n = agree_d = 0
    finite = True
    for w, g in zip(ws, gs):
        if w.shape != g.shape:
            raise ValueError(f"output shape {tuple(g.shape)}, expected {tuple(w.shape)}")
        w64, g64 = w.detach().cpu().double(), g.detach().cpu().double()
        if not w.numel():
            continue
        finite = finite and bool(torch.isfinite(g64).all())
        if finite:
            err = max(err, (g64 - w64).abs().max().item())
        scale = max(scale, w64.abs().max().item())
        if w.dim() >= 2 and w.shape[1] > 1:
            agree_n += (w64.argmax(1) == g64.argmax(1)).sum().item()
            agree_d += w64.argmax(1).numel()
    if not finite:
        err = math.inf
    fig.update(max_abs_err=err, scale=scale, rel_err=err / max(scale, 1e-12), finite=finite,
               argmax_agreement=agree_n / agree_d if agree_d else None)
    if dtype == torch.float32 or dtype == torch.float64:
        fig["tolerance"] = FP32_TOL
        fig["ok"] = finite and fig["rel_err"] <= FP32_TOL
    else:
        fig["tolerance"] = LOGIT_TOL.get(dtype, 1e-1)
        fig["argmax_required"] = ARGMAX_AGREEMENT
        agreement = 1.0 if fig["argmax_agreement"] is None else fig["argmax_agreement"]
        fig["ok"] = finite and fig["rel_err"] <= fig["tolerance"] and agreement >= ARGMAX_AGREEMENT
    if not finite:
        fig["reason"] = "non-finite values in the output under test"
    return fig


def check_parity(want, got, dtype: torch.dtype = torch.float32, what: str = "the output", *,
                 labels: bool = False) -> dict:
    """Raise ParityError (with the figures) unless `got` matches `want`; return the figures."""
    try:
        fig = parity_figures(want, got, dtype, labels=labels)
    except ValueError as exc:
        raise ParityError(f"{what} disagrees with the reference: {exc}", {"ok": False, "reason": str(exc)}) from None
    if not fig["ok"]:
        detail = fig.get("reason") or ", ".join(
            f"{k}={v:.3g}" for k, v in fig.items() if isinstance(v, float))
        raise ParityError(f"{what} disagrees with the reference: {detail}", fig)
    return fig
