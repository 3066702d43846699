"""effseg.runtime.cudart: the ctypes CUDA runtime calls TensorRTRunner uses."""
import numpy as np
import pytest

from effseg.runtime import cudart


def _device_or_skip():
    try:
        n = cudart.device_count()
    except cudart.CudaError as exc:
        pytest.skip(f"no usable CUDA runtime here: {exc}")
    if n == 0:
        pytest.skip("no CUDA device here")


def test_missing_library_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(cudart, "_lib", None)
    monkeypatch.setattr(cudart, "_candidates", lambda: ["libcudart-that-does-not-exist.so"])
    with pytest.raises(cudart.CudaError, match="libcudart.*was not found"):
        cudart.malloc(16)


@pytest.mark.gpu
def test_device_round_trip():
    _device_or_skip()
    x = np.arange(1000, dtype=np.float32)
    y = np.empty_like(x)
    stream = cudart.stream_create()
    ptr = cudart.malloc(x.nbytes)
    try:
        cudart.memcpy_htod_async(ptr, x.ctypes.data, x.nbytes, stream)
        cudart.memcpy_dtoh_async(y.ctypes.data, ptr, y.nbytes, stream)
        cudart.stream_synchronize(stream)
    finally:
        cudart.free(ptr)
        cudart.stream_destroy(stream)
    np.testing.assert_array_equal(x, y)
    with pytest.raises(cudart.CudaError, match=r"cudaMalloc\(.*\) failed: cudaErrorMemoryAllocation"):
        cudart.malloc(1 << 60)
