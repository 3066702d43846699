"""Loads the compiled module effseg._C and remembers why when it cannot."""
from __future__ import annotations

_C = None
reason = ""
try:
    from . import _C  # type: ignore[attr-defined]  # noqa: F811
except ImportError as exc:  # a source checkout that was never built, or a broken build
    reason = f"effseg._C did not import ({exc}); reinstall with `pip install .`"


def available() -> bool:
    return _C is not None


def require():
    if _C is None:
        raise RuntimeError(f"the C++ backend is unavailable: {reason}")
    return _C
