"""Triton kernels (CUDA path); loaded lazily by effseg._triton."""
