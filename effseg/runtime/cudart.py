"""The few CUDA runtime calls TensorRTRunner needs (device buffers, one stream, async
copies), through ctypes over libcudart, so running an engine needs neither torch nor
pycuda/cuda-python. Every call's status is checked and reported with CUDA's own name and
text for the error."""
from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
from pathlib import Path

# cudaMemcpyKind values from cuda_runtime_api.h.
_HOST_TO_DEVICE = 1
_DEVICE_TO_HOST = 2
_NAMES = ("libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0")
_lib = None


class CudaError(RuntimeError):
    pass


def _candidates() -> list[str]:
    names = list(_NAMES)
    found = ctypes.util.find_library("cudart")
    if found:
        names.insert(0, found)
    # pip's nvidia-cuda-runtime wheels put the library outside the loader's path.
    spec = importlib.util.find_spec("nvidia")
    for root in (spec.submodule_search_locations or []) if spec else []:
        names += sorted(str(p) for p in Path(root).glob("cuda_runtime/lib/libcudart.so*"))
    return names


def lib() -> ctypes.CDLL:
    global _lib
    if _lib is not None:
        return _lib
    errors = []
    for name in _candidates():
        try:
            handle = ctypes.CDLL(name)
        except OSError as exc:
            errors.append(f"{name}: {exc}")
            continue
        vp, sz, c_int = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int
        for fn, args in (("cudaMalloc", [ctypes.POINTER(vp), sz]), ("cudaFree", [vp]),
                         ("cudaMemcpyAsync", [vp, vp, sz, c_int, vp]),
                         ("cudaStreamCreate", [ctypes.POINTER(vp)]), ("cudaStreamSynchronize", [vp]),
                         ("cudaStreamDestroy", [vp]), ("cudaGetDeviceCount", [ctypes.POINTER(c_int)])):
            getattr(handle, fn).argtypes = args
            getattr(handle, fn).restype = c_int
        for fn in ("cudaGetErrorName", "cudaGetErrorString"):
            getattr(handle, fn).argtypes = [c_int]
            getattr(handle, fn).restype = ctypes.c_char_p
        _lib = handle
        return handle
    raise CudaError("the CUDA runtime library (libcudart) was not found: " + "; ".join(errors[-2:]))


def check(status: int, what: str) -> None:
    if status != 0:
        h = lib()
        name = h.cudaGetErrorName(status).decode(errors="replace")
        text = h.cudaGetErrorString(status).decode(errors="replace")
        raise CudaError(f"{what} failed: {name} ({status}): {text}")


def device_count() -> int:
    n = ctypes.c_int(0)
    check(lib().cudaGetDeviceCount(ctypes.byref(n)), "cudaGetDeviceCount")
    return n.value


def malloc(nbytes: int) -> int:
    ptr = ctypes.c_void_p()
    check(lib().cudaMalloc(ctypes.byref(ptr), max(int(nbytes), 1)), f"cudaMalloc({nbytes})")
    return ptr.value


def free(ptr: int) -> None:
    if ptr:
        check(lib().cudaFree(ptr), "cudaFree")


def stream_create() -> int:
    s = ctypes.c_void_p()
    check(lib().cudaStreamCreate(ctypes.byref(s)), "cudaStreamCreate")
    return s.value or 0


def stream_synchronize(stream: int) -> None:
    check(lib().cudaStreamSynchronize(stream), "cudaStreamSynchronize")


def stream_destroy(stream: int) -> None:
    if stream:
        check(lib().cudaStreamDestroy(stream), "cudaStreamDestroy")


def memcpy_htod_async(dst: int, src_host: int, nbytes: int, stream: int) -> None:
    check(lib().cudaMemcpyAsync(dst, src_host, nbytes, _HOST_TO_DEVICE, stream), "cudaMemcpyAsync (to device)")


def memcpy_dtoh_async(dst_host: int, src: int, nbytes: int, stream: int) -> None:
    check(lib().cudaMemcpyAsync(dst_host, src, nbytes, _DEVICE_TO_HOST, stream), "cudaMemcpyAsync (to host)")
