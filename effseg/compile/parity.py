"""Parity between the eager model and its compiled form.

fp32: max |compiled - eager| <= 1e-4 x output scale (max |eager|).
fp16 / bf16: argmax over the class dim agrees on >= 99.5% of pixels and
max |compiled - eager| <= LOGIT_TOL[dtype] x output scale.
"""
from __future__ import annotations

import torch
from torch.utils._pytree import tree_flatten

FP32_TOL = 1e-4
ARGMAX_AGREEMENT = 0.995
LOGIT_TOL = {torch.float16: 2e-2, torch.bfloat16: 1e-1}


class ParityError(RuntimeError):
    """The compiled model disagrees with the eager one; `.figures` holds the measurements."""

    def __init__(self, message: str, figures: dict):
        super().__init__(message)
        self.figures = figures


def _leaves(out) -> list:
    leaves, _ = tree_flatten(out)
    return [t for t in leaves if isinstance(t, torch.Tensor)]


def parity_figures(want, got, dtype: torch.dtype) -> dict:
    """Compare two outputs (tensors or nests of tensors) and return the figures and verdict."""
    ws, gs = _leaves(want), _leaves(got)
    if len(ws) != len(gs):
        return {"ok": False, "reason": f"{len(gs)} outputs, eager gave {len(ws)}"}
    fig = {"dtype": str(dtype).replace("torch.", ""), "max_abs_err": 0.0, "scale": 0.0, "ok": True}
    agree_n = agree_d = 0
    for w, g in zip(ws, gs):
        if w.shape != g.shape:
            return {"ok": False, "reason": f"output shape {tuple(g.shape)}, eager gave {tuple(w.shape)}"}
        w64, g64 = w.detach().double(), g.detach().to(w.device).double()
        if not torch.isfinite(g64).all():
            fig.update(ok=False, reason="non-finite values in the compiled output")
            return fig
        fig["max_abs_err"] = max(fig["max_abs_err"], (g64 - w64).abs().max().item() if w.numel() else 0.0)
        fig["scale"] = max(fig["scale"], w64.abs().max().item() if w.numel() else 0.0)
        if dtype != torch.float32 and w.dim() >= 2 and w.shape[1] > 1:
            agree_n += (w64.argmax(1) == g64.argmax(1)).sum().item()
            agree_d += w64.argmax(1).numel()
    scale = max(fig["scale"], 1e-12)
    fig["rel_err"] = fig["max_abs_err"] / scale
    if dtype == torch.float32:
        fig["tolerance"] = FP32_TOL
        fig["ok"] = fig["rel_err"] <= FP32_TOL
    else:
        tol = LOGIT_TOL.get(dtype, 1e-1)
        fig["tolerance"] = tol
        fig["argmax_agreement"] = agree_n / agree_d if agree_d else 1.0
        fig["argmax_required"] = ARGMAX_AGREEMENT
        fig["ok"] = fig["rel_err"] <= tol and fig["argmax_agreement"] >= ARGMAX_AGREEMENT
    return fig


def check_parity(want, got, dtype: torch.dtype, what: str) -> dict:
    """Raise ParityError (with the figures) unless `got` matches `want`; return the figures."""
    fig = parity_figures(want, got, dtype)
    if not fig["ok"]:
        detail = fig.get("reason") or ", ".join(
            f"{k}={v:.3g}" for k, v in fig.items() if isinstance(v, float))
        raise ParityError(f"{what} disagrees with the eager model: {detail}", fig)
    return fig
