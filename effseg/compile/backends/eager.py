"""The rewritten graph, run by PyTorch's eager interpreter of the GraphModule."""
from __future__ import annotations


def usable(device) -> tuple[bool, str]:
    return True, ""


def build(gm, example, *, device, options):
    if options:
        raise TypeError(f"backend 'eager' takes no options, got {sorted(options)}")
    return gm
