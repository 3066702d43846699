"""pytest-benchmark cases for every op (`pytest bench/ --benchmark-only`). Not part of the
test run: pyproject's testpaths is tests/ only.

EFFSEG_BENCH_DEVICE=cpu|cuda picks the device (default: cuda when present)."""
import os

import pytest
import torch

# Triton's interpreter must be chosen before anything imports triton (as in tests/).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(scope="session")
def device() -> str:
    dev = os.environ.get("EFFSEG_BENCH_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    if dev == "cuda" and not torch.cuda.is_available():
        pytest.skip("EFFSEG_BENCH_DEVICE=cuda but torch sees no CUDA device")
    return dev


@pytest.fixture
def bench(benchmark, device):
    """benchmark(fn) with a device synchronise after each call on CUDA, under no_grad
    unless grad=True; returns fn's result."""
    def run(fn, *, grad: bool = False):
        def call():
            if grad:
                out = fn()
            else:
                with torch.no_grad():
                    out = fn()
            if device == "cuda":
                torch.cuda.synchronize()
            return out
        return benchmark(call)
    return run
