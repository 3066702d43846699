"""effseg's C++ cross selective scan on numpy arrays, without torch: the runtime's fast
CPU path for the scans of a bundle's native-scan form (effseg.export.scan_split).

effseg._C takes raw (address, element count) buffers and checks every count against the
sizes it is given, so numpy arrays go straight in. Where effseg._C does not import (a
runtime-only install, or a platform without a build), `reason()` says why and the
runtime runs model.onnx, whose scans are standard ops.
"""
from __future__ import annotations

import numpy as np

try:
    from .. import _C
except ImportError as exc:  # a wheel without the extension, or torch-free edge installs
    _C, _REASON = None, f"effseg._C does not import ({exc})"
else:
    _REASON = "" if hasattr(_C, "cross_selective_scan_fwd") else "effseg._C has no cross_selective_scan_fwd"

K_DIRECTIONS = 4
_SELECTIVE_REASON = "" if _C is None or hasattr(_C, "selective_scan_fwd") else "effseg._C has no selective_scan_fwd"


def available() -> bool:
    return _C is not None and not _REASON


def reason() -> str:
    """Why the native scan cannot run here ('' when it can)."""
    return _REASON


def _buf(a: np.ndarray) -> tuple[int, int]:
    return a.ctypes.data, a.size


def _f32(name: str, a, ndim: int) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(a).__name__}")
    if a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {a.shape}")
    if a.dtype != np.float32:
        raise TypeError(f"{name} must be float32, got {a.dtype}")
    return np.ascontiguousarray(a)


def cross_selective_scan(u, delta, A, B, C, D, delta_bias, tmap, delta_softplus: bool) -> np.ndarray:
    """SS2D's four scans merged, as effseg.ops.cross_selective_scan computes them.

    u (b, d, L) float32; delta (b, 4d, L); A (4d, n); B, C (b, 4, n, L); D, delta_bias
    (4d,); tmap (4, L) integer traversal orders. Returns y (b, d, L) float32. Raises
    ValueError naming the argument whose shape does not fit u and A.
    """
    if not available():
        raise RuntimeError(f"the native scan is unavailable: {_REASON}")
    u = _f32("u", u, 3)
    bt, d, L = u.shape
    A = _f32("A", A, 2)
    dm, n = K_DIRECTIONS * d, A.shape[1]
    want = {"delta": (bt, dm, L), "A": (dm, n), "B": (bt, K_DIRECTIONS, n, L), "C": (bt, K_DIRECTIONS, n, L),
            "D": (dm,), "delta_bias": (dm,)}
    arrs = {"delta": delta, "A": A, "B": B, "C": C, "D": D, "delta_bias": delta_bias}
    for name, shape in want.items():
        arrs[name] = _f32(name, arrs[name], len(shape))
        if arrs[name].shape != shape:
            raise ValueError(f"{name} must have shape {shape} for u {u.shape} and A {A.shape}, "
                             f"got {arrs[name].shape}")
    if not isinstance(tmap, np.ndarray) or tmap.dtype.kind not in "iu" or tmap.shape != (K_DIRECTIONS, L):
        raise ValueError(f"tmap must be an integer array of shape {(K_DIRECTIONS, L)}, got "
                         f"{getattr(tmap, 'dtype', type(tmap).__name__)} {getattr(tmap, 'shape', '')}")
    tm = np.ascontiguousarray(tmap, dtype=np.int32)
    out = np.empty((bt, d, L), np.float32)
    nl = n * L
    strides = (K_DIRECTIONS * nl, nl, L, 1)
    ok = _C.cross_selective_scan_fwd(
        "float32", bt, dm, L, n, K_DIRECTIONS, _buf(u), _buf(arrs["delta"]), _buf(arrs["A"]),
        _buf(arrs["B"]), strides, _buf(arrs["C"]), strides, _buf(arrs["D"]), _buf(arrs["delta_bias"]),
        bool(delta_softplus), _buf(tm), _buf(out))
    if not ok:
        raise ValueError("delta holds NaN or Inf: the scan's output would be meaningless")
    return out


def selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus: bool) -> tuple:
    """Mamba's selective scan, as effseg.ops.selective_scan computes it (no initial
    state). u, delta, z (b, d, L) float32; A (d, n); B, C (b, n, L); D, delta_bias (d,);
    D, z and delta_bias may be None. Returns (y (b, d, L), last_state (b, d, n)). Raises
    ValueError naming the argument whose shape does not fit u and A."""
    if not available() or _SELECTIVE_REASON:
        raise RuntimeError(f"the native scan is unavailable: {_REASON or _SELECTIVE_REASON}")
    u = _f32("u", u, 3)
    bt, d, L = u.shape
    A = _f32("A", A, 2)
    n = A.shape[1]
    want = {"delta": (bt, d, L), "A": (d, n), "B": (bt, n, L), "C": (bt, n, L), "D": (d,), "z": (bt, d, L),
            "delta_bias": (d,)}
    arrs = {"delta": delta, "A": A, "B": B, "C": C, "D": D, "z": z, "delta_bias": delta_bias}
    for name, shape in want.items():
        if arrs[name] is None and name in ("D", "z", "delta_bias"):
            continue
        arrs[name] = _f32(name, arrs[name], len(shape))
        if arrs[name].shape != shape:
            raise ValueError(f"{name} must have shape {shape} for u {u.shape} and A {A.shape}, "
                             f"got {arrs[name].shape}")
    # The kernel reads B and C as (b, L, n) rows, one group (effseg.ops.selective_scan's layout).
    bk = np.ascontiguousarray(arrs["B"].transpose(0, 2, 1))
    ck = np.ascontiguousarray(arrs["C"].transpose(0, 2, 1))
    strides = (L * n, 0, 1, n)
    out = np.empty((bt, d, L), np.float32)
    last = np.empty((bt, d, n), np.float32)

    def opt(a):
        return (0, 0) if a is None else _buf(a)

    ok = _C.selective_scan_fwd(
        "float32", bt, d, L, n, 1, _buf(u), _buf(arrs["delta"]), _buf(A), _buf(bk), strides, _buf(ck), strides,
        opt(arrs["D"]), opt(arrs["z"]), opt(arrs["delta_bias"]), (0, 0), bool(delta_softplus), _buf(out),
        _buf(last))
    if not ok:
        raise ValueError("delta holds NaN or Inf: the scan's output would be meaningless")
    return out, last
