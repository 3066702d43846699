"""Peak memory of one benchmark row: host resident set and the GPU's torch allocator.

Host: Linux's VmHWM (/proc/self/status), the process's peak resident set, which
writing "5" to /proc/self/clear_refs resets to the current resident set (Linux >= 4.0).
Where that is not possible the figure is resource.getrusage's ru_maxrss: the peak over
the whole process lifetime, not resettable (`method` says which was used).
"""
from __future__ import annotations

import re
import resource
import sys

_PROC = "/proc/self/status"


def _status_kb(field: str) -> int | None:
    try:
        with open(_PROC) as f:
            m = re.search(rf"^{field}:\s+(\d+) kB", f.read(), flags=re.MULTILINE)
    except OSError:
        return None
    return int(m.group(1)) if m else None


def _maxrss_kb() -> int:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r // 1024 if sys.platform == "darwin" else r  # bytes on macOS, kB on Linux


class HostPeak:
    """Use: hp = HostPeak(); hp.start(); ...work...; hp.stop() -> (peak MB, start MB)."""

    def __init__(self):
        self.method = "VmHWM reset via /proc/self/clear_refs" if self._can_reset() else "ru_maxrss (lifetime)"
        self._start_kb = 0

    @staticmethod
    def _can_reset() -> bool:
        if _status_kb("VmHWM") is None:
            return False
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            return False
        return True

    def start(self) -> None:
        if self.method.startswith("VmHWM"):
            self._can_reset()
        self._start_kb = _status_kb("VmRSS") or _maxrss_kb()

    def stop(self) -> tuple[float, float]:
        peak = _status_kb("VmHWM") if self.method.startswith("VmHWM") else None
        peak = peak if peak is not None else _maxrss_kb()
        return peak / 1024, self._start_kb / 1024


def gpu_reset(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def gpu_peak_mb(device: str) -> float | None:
    """Peak bytes held by torch's CUDA caching allocator since gpu_reset, in MB."""
    if not device.startswith("cuda"):
        return None
    import torch

    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**20
