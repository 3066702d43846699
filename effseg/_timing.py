"""Side-by-side timing: medians after warm-up, synchronised on GPU."""
from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable

import torch


def _sync(device: str):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def median_ms(fn: Callable[[], object], device: str = "cpu", repeats: int = 5, warmup: int = 2,
              budget_s: float = 0.5, max_repeats: int = 50) -> dict:
    """Run fn warmup times, then time at least `repeats` calls; return median/min/max in ms.

    Fast calls are repeated until about budget_s of timing (at most max_repeats calls):
    on a shared 2-core machine a median of 5 millisecond calls moved by 2x between runs.
    Calls that take over a second (the Python-loop reference at long L) get 3 repeats.
    """
    per_call = 0.0
    for _ in range(warmup):  # the last warm-up call (not the first: lazy set-up) sizes the run
        t0 = time.perf_counter()
        fn()
        _sync(device)
        per_call = time.perf_counter() - t0
    if per_call > 1.0:
        repeats = min(repeats, 3)
    elif per_call > 0:
        repeats = max(repeats, min(max_repeats, int(budget_s / per_call)))
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times),
            "repeats": repeats}


def stream_ms(nbytes: int, device: str = "cpu", repeats: int = 5) -> float:
    """Time to move nbytes through memory once (a copy reading nbytes/2, writing nbytes/2)."""
    n = max(1, nbytes // 8)
    src = torch.ones(n, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    return median_ms(lambda: dst.copy_(src), device, repeats=max(repeats, 5), warmup=2)["median_ms"]


def dram_GBps(device: str = "cpu", nbytes: int = 1 << 29) -> float:
    """Main-memory copy bandwidth (bytes read + written per second) on a buffer far
    larger than any cache: the floor for data that does not stay cache-resident."""
    src = torch.ones(nbytes // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    ms = median_ms(lambda: dst.copy_(src), device, repeats=5, warmup=2)["median_ms"]
    return 2 * nbytes / (ms * 1e6)


def machine(device: str = "cpu") -> dict:
    info = {
        "platform": platform.platform(),
        "processor": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "malloc_mmap_threshold": os.environ.get("MALLOC_MMAP_THRESHOLD_"),
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
        try:
            import triton

            info["triton"] = triton.__version__
        except ImportError:
            pass
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def sample_ms(fn: Callable[[], object], device: str = "cpu", iters: int = 10,
              warmup: int = 2) -> list[float]:
    """Per-iteration latencies in ms after `warmup` untimed calls.

    CUDA: each iteration is bracketed by CUDA events after a device synchronise and
    waits on its end event, so queued work of one call never leaks into the next one's
    time. CPU: time.perf_counter around each call (what runs on CPU returns when done).
    """
    if iters < 1 or warmup < 0:
        raise ValueError(f"iters must be >= 1 and warmup >= 0, got iters={iters}, warmup={warmup}")
    cuda = device.startswith("cuda")
    for _ in range(warmup):
        fn()
        _sync(device)
    times = []
    for _ in range(iters):
        if cuda:
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(float(start.elapsed_time(end)))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return times
