"""The rewritten graph handed to torch.compile (Inductor)."""
from __future__ import annotations

import torch

_KEYS = {"mode", "options", "fullgraph", "dynamic"}


def usable(device) -> tuple[bool, str]:
    if device.type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return False, "torch.compile on CUDA needs triton"
    return True, ""


def build(gm, example, *, device, options):
    bad = set(options) - _KEYS
    if bad:
        raise TypeError(f"backend 'inductor' options must be among {sorted(_KEYS)}, got {sorted(bad)}")
    # One graph per specialisation: a recompile is ours to trigger, not Dynamo's guess.
    kw = {"dynamic": False, **options}
    return torch.compile(gm, **kw)
