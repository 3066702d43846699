"""What `effseg bench --model` accepts: a zoo name, a checkpoint (with --arch, or none
when `effseg train` wrote it: it names its architecture), or `module:callable` returning
an nn.Module."""
from __future__ import annotations

import importlib
import inspect
import os
from dataclasses import dataclass

from torch import nn

CKPT_SUFFIXES = (".ckpt", ".pth", ".pt")


@dataclass
class ModelSpec:
    label: str          # the name shown in rows
    source: str         # "zoo" | "checkpoint" | "callable"
    module: nn.Module


def _is_checkpoint(spec: str) -> bool:
    return spec.endswith(CKPT_SUFFIXES) or os.path.isfile(spec)


def _from_callable(spec: str, **kwargs) -> nn.Module:
    mod_name, _, attr = spec.partition(":")
    if not mod_name or not attr:
        raise ValueError(f"--model: {spec!r} is not of the form module:callable")
    try:
        obj = importlib.import_module(mod_name)
    except ImportError as exc:
        raise ValueError(f"--model: cannot import module {mod_name!r} ({exc})") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"--model: module {mod_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"--model: {spec!r} is not callable")
    if not isinstance(obj, nn.Module):
        try:
            params = inspect.signature(obj).parameters
        except (TypeError, ValueError):
            params = {}
        # Training needs the callable to build K classes and C bands; a callable that
        # takes neither is called bare, as before.
        obj = obj(**{k: v for k, v in kwargs.items() if k in params})
    model = obj
    if not isinstance(model, nn.Module):
        raise TypeError(f"--model: {spec!r} returned {type(model).__name__}, expected a torch.nn.Module")
    return model


def build_model(arch: str, num_classes: int, in_channels: int = 3, seed: int = 0) -> nn.Module:
    """A fresh model for a zoo name or `module:callable` (called with num_classes= and
    in_channels= when its signature takes them), its initial weights from `seed`."""
    import torch

    from . import create_model, list_models

    if ":" in arch:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return _from_callable(arch, num_classes=num_classes, in_channels=in_channels)
    if arch not in list_models():
        raise ValueError(f"--model: unknown model {arch!r}; use a zoo name ({', '.join(list_models())}) "
                         "or module:callable")
    return create_model(arch, num_classes, seed=seed, **({"in_channels": in_channels} if in_channels != 3 else {}))


def resolve(spec: str, *, num_classes: int = 6, in_channels: int = 3, arch: str | None = None,
            trusted: bool = False) -> ModelSpec:
    """Build the model `spec` names, in eval mode, on CPU."""
    from . import create_model, list_models, load_checkpoint
    from .checkpoint import checkpoint_meta

    if not isinstance(spec, str) or not spec:
        raise ValueError(f"--model: expected a zoo name, PATH.ckpt or module:callable, got {spec!r}")
    zoo_kw = {"in_channels": in_channels} if in_channels != 3 else {}
    if _is_checkpoint(spec):
        meta = checkpoint_meta(spec, trusted) if arch is None and os.path.isfile(spec) else None
        if meta is not None:
            # A checkpoint from `effseg train` names its model: no --arch needed.
            model = build_model(meta["architecture"], int(meta["num_classes"]), int(meta["in_channels"]))
            load_checkpoint(model, spec)
            return ModelSpec(f"{meta['architecture']}:{os.path.basename(spec)}", "checkpoint", model.eval())
        if arch is None:
            raise ValueError(f"--model {spec!r} is a checkpoint: name its architecture with "
                             f"--arch (one of {', '.join(list_models())})")
        if not os.path.isfile(spec):
            raise ValueError(f"--model: no checkpoint file at {spec!r}")
        model = create_model(arch, num_classes, **zoo_kw)
        load_checkpoint(model, spec, trusted=trusted)
        return ModelSpec(f"{arch}:{os.path.basename(spec)}", "checkpoint", model.eval())
    if arch is not None:
        raise ValueError("--arch applies to checkpoint paths only (--model PATH.ckpt --arch NAME)")
    if ":" in spec:
        return ModelSpec(spec, "callable", _from_callable(spec).eval())
    if spec not in list_models():
        raise ValueError(f"--model: unknown model {spec!r}; use a zoo name "
                         f"({', '.join(list_models())}), PATH.ckpt with --arch, or module:callable")
    return ModelSpec(spec, "zoo", create_model(spec, num_classes, **zoo_kw).eval())
