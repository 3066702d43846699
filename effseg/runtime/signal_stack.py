"""A signal stack for the calling thread that nothing frees.

Python installs its signal handlers with SA_ONSTACK, so SIGINT, SIGALRM (effseg bench's
setup time limit) and faulthandler's handlers run on the thread's alternate signal stack
when one is set. OpenVINO's CPU plugin sets its own alternate stack on the thread that
compiles a model (it needs a larger one once AMX state is enabled) and can leave the
thread pointing at it after that memory is released: the next signal delivered there
faults before any handler runs (seen as a segmentation fault in effseg bench's
setup-timeout path after OpenVINO rows, tests/runtime/test_signal_stack.py). Calling
keep_signal_stack() after such a library runs points the thread at a stack effseg owns
for the life of the process. Linux only; elsewhere it does nothing.
"""
from __future__ import annotations

import ctypes
import os
import sys
import threading

_SS_DISABLE = 2
_MIN_BYTES = 256 * 1024  # AMX state alone is ~11 KiB per signal frame; Python's handlers need more
_stacks: dict[int, ctypes.Array] = {}  # thread ident -> its buffer, never freed
_lock = threading.Lock()


class _StackT(ctypes.Structure):
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def current() -> tuple[int, int, int] | None:
    """(address, flags, size) of the calling thread's alternate signal stack; None off Linux."""
    libc = _libc()
    if libc is None:
        return None
    s = _StackT()
    if libc.sigaltstack(None, ctypes.byref(s)) != 0:
        return None
    return int(s.ss_sp or 0), int(s.ss_flags), int(s.ss_size)


def keep_signal_stack() -> bool:
    """Point the calling thread's alternate signal stack at a buffer effseg keeps alive
    (one per thread, made once). Returns True where it did (Linux), else False."""
    libc = _libc()
    if libc is None:
        return False
    size = _MIN_BYTES
    try:
        size = max(size, 4 * int(os.sysconf("SC_SIGSTKSZ")))
    except (ValueError, OSError, AttributeError):
        pass
    ident = threading.get_ident()
    with _lock:
        buf = _stacks.get(ident)
        if buf is None or ctypes.sizeof(buf) < size:
            buf = _stacks[ident] = ctypes.create_string_buffer(size)
    s = _StackT(ctypes.cast(buf, ctypes.c_void_p), 0, ctypes.sizeof(buf))
    # Non-zero (EPERM): a signal handler is running on the current alternate stack right now.
    return libc.sigaltstack(ctypes.byref(s), None) == 0
