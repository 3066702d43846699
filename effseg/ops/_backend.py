"""Backend choice shared by the ops: which of cpp / triton / a tensor-op fallback runs."""
from __future__ import annotations

import torch
from torch.utils._python_dispatch import _get_current_dispatch_mode

from .. import _native, _triton


def check_explicit(backend: str, device: torch.device, what: str = "tensors") -> None:
    """Raise, naming the backend, when an explicitly requested cpp / triton cannot run."""
    if backend == "cpp":
        if device.type != "cpu":
            raise ValueError(f"backend='cpp' runs on CPU tensors, got {what} on {device}")
        _native.require()
    elif backend == "triton":
        ok, why = _triton.status()
        if not ok:
            raise RuntimeError(f"backend='triton' is unavailable: {why}")
        if device.type == "cpu" and not _triton.interpreting():
            raise ValueError("backend='triton' needs CUDA tensors (or TRITON_INTERPRET=1 for CPU tensors)")


def resolve(backend: str, device: torch.device, fallback: str = "ref") -> str:
    """The backend that runs: 'auto' picks C++ on CPU, Triton on CUDA, else `fallback`."""
    if backend == "auto":
        if device.type == "cpu":
            return "cpp" if _native.available() else fallback
        if device.type == "cuda" and _triton.status()[0]:
            return "triton"
        return fallback
    check_explicit(backend, device)
    return backend


def must_dispatch() -> bool:
    """True when a call has to go through the custom op rather than a direct eager
    shortcut: under torch.compile tracing, or under a Python dispatch mode
    (FlopCounterMode, FakeTensorMode), which only see ops that are dispatched."""
    return torch.compiler.is_compiling() or _get_current_dispatch_mode() is not None
