"""Argument checks shared by the ops: each error names the argument and what was expected."""
from __future__ import annotations

from typing import Optional, Sequence

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def tensor(name: str, x, *, dims: Optional[Sequence[int]] = None, optional: bool = False):
    if x is None:
        if optional:
            return
        raise TypeError(f"{name} must be a torch.Tensor, got None")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} must be float16, bfloat16, float32 or float64, got {x.dtype}"
        )
    if dims is not None and x.dim() not in dims:
        want = " or ".join(f"{d}-D" for d in dims)
        raise ValueError(f"{name} must be {want}, got shape {tuple(x.shape)}")


def shape(name: str, x, expected: Sequence[int], what: str):
    if x is not None and tuple(x.shape) != tuple(expected):
        raise ValueError(f"{name} must have shape {what} = {tuple(expected)}, got {tuple(x.shape)}")


def same_device(ref_name: str, ref: torch.Tensor, **others):
    for name, x in others.items():
        if x is not None and x.device != ref.device:
            raise ValueError(f"{name} is on {x.device} but {ref_name} is on {ref.device}; move them to one device")


def finite(name: str, x: torch.Tensor):
    # Data-dependent: a host sync in eager mode, impossible while tracing or on meta
    # tensors (shape-only runs such as FLOP counting), so skipped there.
    if torch.compiler.is_compiling() or x.device.type == "meta":
        return
    # One reduction is ~10x cheaper than isfinite().all(); NaN/Inf anywhere makes the sum
    # non-finite, and only then is the exact (and overflow-proof) check paid for.
    if not bool(torch.isfinite(x.sum())) and not bool(torch.isfinite(x).all()):
        kernel_finite(name, False)


def kernel_finite(name: str, ok: bool):
    """Raise the same error as finite() for a kernel that checked the values as it read them."""
    if not ok:
        raise ValueError(f"{name} contains NaN or Inf values")


def choice(name: str, value, options: Sequence[str]):
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}; got {value!r}")
