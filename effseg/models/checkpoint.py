"""load_checkpoint: bare state dicts, {"state_dict": ...} and GeoSeg Lightning .ckpt files."""
from __future__ import annotations

import os
import pickle
import warnings
from collections.abc import Mapping
from typing import NamedTuple

import torch
from torch import nn

# Wrappers that training code puts around the net: GeoSeg's Lightning module holds it
# as `self.net`; DataParallel/DDP add `module.`; other trainers use `model.`.
_PREFIXES = ("", "net.", "model.", "module.", "net.module.", "model.module.")
_LIST_MAX = 20


class LoadResult(NamedTuple):
    missing: list[str]
    unexpected: list[str]
    mismatched: list[tuple[str, tuple, tuple]]   # (key, checkpoint shape, model shape)
    prefix: str                                  # the wrapper prefix that was stripped


def _read(path, map_location, trusted: bool):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"path_or_state_dict: no checkpoint file at {path!r}")
    try:
        return torch.load(path, map_location=map_location, weights_only=not trusted)
    except pickle.UnpicklingError as e:
        if trusted:
            raise
        raise ValueError(
            f"path_or_state_dict: {path!r} holds Python objects besides tensors (Lightning "
            f"checkpoints often store hyper-parameters this way) and was not unpickled; "
            f"if you trust the file, pass trusted=True ({e})") from None


# Key of the plain-JSON metadata `effseg train` writes next to "state_dict".
META_KEY = "effseg"


def checkpoint_meta(path, trusted: bool = False) -> dict | None:
    """The metadata an `effseg train` checkpoint carries under "effseg" (architecture,
    num_classes, in_channels, normalisation, classes, palette, tile size...), or None for
    a checkpoint without it (or one that only unpickles with trusted=True when not
    trusted). Read with weights_only=True unless trusted: no code runs."""
    try:
        obj = _read(path, "cpu", trusted=trusted)
    except ValueError:
        return None
    meta = obj.get(META_KEY) if isinstance(obj, Mapping) else None
    return dict(meta) if isinstance(meta, Mapping) else None


def _state_dict(obj) -> Mapping[str, torch.Tensor]:
    if isinstance(obj, nn.Module):
        return obj.state_dict()
    if not isinstance(obj, Mapping):
        raise TypeError(f"path_or_state_dict must be a path, a state dict or a dict with a "
                        f"'state_dict' entry, got {type(obj).__name__}")
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj.get(key), Mapping):
            return obj[key]
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    raise ValueError(f"path_or_state_dict: a dict with neither tensors only nor a "
                     f"'state_dict' entry (keys: {_fmt(list(obj))})")


def _pick_prefix(ckpt_keys, model_keys) -> str:
    def hits(p):
        return sum(1 for k in ckpt_keys if k.startswith(p) and k[len(p):] in model_keys)
    return max(_PREFIXES, key=lambda p: (hits(p), -len(p)))


def _fmt(keys) -> str:
    keys = [str(k) for k in keys]
    more = f" ... and {len(keys) - _LIST_MAX} more" if len(keys) > _LIST_MAX else ""
    return ", ".join(keys[:_LIST_MAX]) + more


def load_checkpoint(model: nn.Module, path_or_state_dict, *, strict: bool = True,
                    map_location="cpu", trusted: bool = False) -> LoadResult:
    """Load weights into `model`.

    path_or_state_dict: a file path, a state dict, a {"state_dict": ...} dict (GeoSeg's
    PyTorch Lightning .ckpt, whose net keys carry `net.`), or a module.
    strict (default): any missing key, unexpected key or shape mismatch raises a
    ValueError that lists them and loads nothing. strict=False loads what matches and
    returns the rest in the LoadResult.
    trusted: allow full unpickling of a file (needed for checkpoints that store Python
    objects); only for files you trust.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    obj = path_or_state_dict
    if isinstance(obj, (str, os.PathLike)):
        obj = _read(obj, map_location, trusted)
    sd = _state_dict(obj)
    target = model.state_dict()
    prefix = _pick_prefix(list(sd), target.keys())
    if prefix:
        others = [k for k in sd if not k.startswith(prefix)]
        if others:
            # Parts of the training wrapper other than the net (losses with buffers, EMA
            # copies): they do not belong to the model, but say that they were dropped.
            warnings.warn(f"load_checkpoint: ignoring {len(others)} entries outside "
                          f"'{prefix}': {_fmt(others)}", stacklevel=2)
        sd = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    missing = [k for k in target if k not in sd]
    unexpected = [k for k in sd if k not in target]
    mismatched = [(k, tuple(v.shape), tuple(target[k].shape)) for k, v in sd.items()
                  if k in target and isinstance(v, torch.Tensor)
                  and v.shape != target[k].shape]
    if strict and (missing or unexpected or mismatched):
        parts = [f"load_checkpoint: the checkpoint does not fit {type(model).__name__}"
                 + (f" (after stripping '{prefix}')" if prefix else "")]
        if missing:
            parts.append(f"missing keys ({len(missing)}): {_fmt(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {_fmt(unexpected)}")
        if mismatched:
            parts.append(f"shape mismatches ({len(mismatched)}): " + _fmt(
                f"{k} checkpoint {list(a)} vs model {list(b)}" for k, a, b in mismatched))
        raise ValueError("\n  ".join(parts))
    bad = {k for k, _, _ in mismatched}
    model.load_state_dict({k: v for k, v in sd.items() if k in target and k not in bad},
                          strict=False)
    return LoadResult(missing, unexpected, mismatched, prefix)
