"""Loads the compiled module effseg._C and remembers why when it cannot."""
from __future__ import annotations

import warnings

_C = None
reason = ""
try:
    from . import _C  # type: ignore[attr-defined]  # noqa: F811
except ImportError as exc:  # a source checkout that was never built, or a broken build
    reason = f"effseg._C did not import ({exc}); reinstall with `pip install .`"
    # Without _C every op silently takes its PyTorch path: the selective scan was
    # measured ~100x slower (0.7 s vs 6 ms at B1 D512 N16 L4096). Say so once, loudly.
    warnings.warn(
        f"effseg's C++ kernels are missing: {reason}. Every op now runs on its PyTorch "
        "fallback, the selective scan ~100x slower. Build them with `pip install .` (or "
        "`pip install -e .`) in the checkout, and run from outside the source folder.",
        RuntimeWarning, stacklevel=2)


def available() -> bool:
    return _C is not None


def require():
    if _C is None:
        raise RuntimeError(f"the C++ backend is unavailable: {reason}")
    return _C


def buf(t) -> tuple[int, int]:
    """A tensor as the C++ bindings take it: (address, element count); (0, 0) for None.
    The bindings check the count against the sizes they are given before running."""
    return (0, 0) if t is None else (t.data_ptr(), t.numel())


def strided_buf(t) -> tuple[int, int]:
    """(address, elements from there to the end of its storage) for a tensor the kernel
    reads through its own strides (a view's numel need not cover its strided span)."""
    room = t.untyped_storage().nbytes() // t.element_size() - t.storage_offset()
    return t.data_ptr(), room
