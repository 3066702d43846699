"""The rewritten graph handed to torch.compile (Inductor)."""
from __future__ import annotations

import torch

from ._options import check_options

_KEYS = {"mode", "options", "fullgraph", "dynamic"}


def usable(device) -> tuple[bool, str]:
    if device.type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return False, "torch.compile on CUDA needs triton"
    return True, ""


def default_options(device) -> dict:
    """Inductor settings effseg uses for an inference graph, before the user's overrides.

    freezing: the weights are constants of the captured graph, so Inductor folds them
    and pre-packs convolution weights for oneDNN once instead of per call (about 9% on
    UNetFormer at 512^2 on the 2-core CPU). On CUDA the graph is also replayed as a CUDA
    graph (what mode="reduce-overhead" turns on): there is one specialisation per input
    shape, which is what CUDA graphs need, and launch overhead dominates small models.
    """
    opts = {"freezing": True}
    if device.type == "cuda":
        opts["triton.cudagraphs"] = True
    return opts


def build(gm, example, *, device, options):
    check_options("inductor", options, _KEYS)
    user = dict(options)
    extra = user.pop("options", None) or {}
    if not isinstance(extra, dict):
        raise TypeError(f"backend 'inductor' option 'options' must be a dict of Inductor settings, "
                        f"got {type(extra).__name__}")
    # One graph per specialisation: a recompile is ours to trigger, not Dynamo's guess.
    kw = {"dynamic": False, **user}
    mode = kw.pop("mode", None)
    # torch.compile refuses mode and options together; a mode is only a set of Inductor
    # settings, so they are merged here (the user's settings win). Patching Inductor's
    # global config around each call instead was not thread-safe: two threads' patch and
    # restore interleave and leave the config changed for the whole process.
    settings = {**_mode_settings(mode, kw["dynamic"]), **default_options(device), **extra}
    return torch.compile(gm, options=settings, **kw)


def _mode_settings(mode, dynamic) -> dict:
    if mode is None:
        return {}
    from torch._inductor import list_mode_options

    try:
        return dict(list_mode_options(mode, dynamic))
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"backend 'inductor' option 'mode' must be a torch.compile mode, got {mode!r} "
                         f"({exc})") from exc
