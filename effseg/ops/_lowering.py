"""Standard-op lowerings of effseg's custom ops, used by effseg.export.

Each op module registers its own here (`register(op_overload, fn)`, fn taking the op's
arguments), so the exporter needs no list of ops.
"""
from __future__ import annotations

from typing import Callable

_LOWERINGS: dict = {}


def register(op, fn: Callable) -> None:
    _LOWERINGS[op] = fn


def lowerings() -> dict:
    import effseg.ops  # noqa: F401  (each op module registers on import)

    return dict(_LOWERINGS)
