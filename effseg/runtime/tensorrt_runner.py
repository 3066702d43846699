"""Running a serialized TensorRT engine (TensorRT 10.x / 11.x name-based I/O API) with
numpy in and out, device memory through effseg.runtime.cudart: no torch, no pycuda.

Only version parsing is testable without TensorRT; the runner is kept small and plain.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

MIN_TENSORRT = (10, 0, 0)
NOT_INSTALLED = "tensorrt is not installed (its libraries cannot be installed on this machine)"


def parse_version(version) -> tuple[int, int, int]:
    """'10.3.0.26' -> (10, 3, 0); '11.0' -> (11, 0, 0); a tuple passes through."""
    if isinstance(version, (tuple, list)):
        parts = list(version)
        if not 1 <= len(parts) <= 4 or not all(isinstance(p, int) and not isinstance(p, bool) and p >= 0
                                                for p in parts):
            raise ValueError(f"version must be like (10, 3, 0), got {version!r}")
    else:
        m = re.fullmatch(r"\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:\.\d+)?(?:[.+-]?[A-Za-z][\w.+-]*)?\s*", str(version))
        if not m:
            raise ValueError(f"version must be like '10.3.0' or '10.3.0.26', got {version!r}")
        parts = [int(g) for g in m.groups() if g is not None]
    parts = (parts + [0, 0])[:3]
    return parts[0], parts[1], parts[2]


def import_tensorrt():
    try:
        import tensorrt
    except (ImportError, OSError) as exc:  # OSError: the package is there, its libraries are not
        raise RuntimeError(f"{NOT_INSTALLED}: {type(exc).__name__}: {exc}") from exc
    return tensorrt


def tensorrt_version() -> tuple[int, int, int] | None:
    """The installed TensorRT's (major, minor, patch), or None when it does not import."""
    try:
        trt = import_tensorrt()
    except RuntimeError:
        return None
    return parse_version(trt.__version__)


class Engine:
    """A deserialized engine with one execution context and its I/O names and dtypes:
    the one engine loader, for the runtime's TensorRTRunner and effseg.compile's
    TensorRT backend alike."""

    def __init__(self, engine_bytes: bytes, what: str = "(bytes)"):
        trt = import_tensorrt()
        version = parse_version(trt.__version__)
        if version < MIN_TENSORRT:
            raise RuntimeError(f"TensorRT {trt.__version__} is too old: effseg runs engines with TensorRT 10 or newer")
        self.trt = trt
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)  # must outlive the engine
        self.engine = self._runtime.deserialize_cuda_engine(engine_bytes)
        if self.engine is None:
            raise RuntimeError(f"TensorRT {trt.__version__} could not deserialize the engine "
                               f"{what}: built by another TensorRT version or for another GPU?")
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise RuntimeError(f"TensorRT could not create an execution context for the engine {what} "
                               "(out of GPU memory?)")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.dtypes = {n: np.dtype(trt.nptype(self.engine.get_tensor_dtype(n))) for n in names}


class TensorRTRunner:
    """An engine file, deserialized with one execution context and one CUDA stream.

    run({input name: array}) -> {output name: array}. Inputs are cast to the engine's
    tensor dtypes; shapes are set per call (within the engine's optimisation profile).
    """

    def __init__(self, engine_path=None, *, engine_bytes: bytes | None = None):
        from . import cudart

        if engine_bytes is None:
            if engine_path is None:
                raise TypeError("TensorRTRunner needs engine_path or engine_bytes")
            engine_bytes = Path(engine_path).read_bytes()
        loaded = Engine(engine_bytes, str(engine_path or "(bytes)"))
        self._loaded, self._trt, self._cudart = loaded, loaded.trt, cudart
        self.engine, self.context = loaded.engine, loaded.context
        self.inputs, self.outputs, self.dtypes = loaded.inputs, loaded.outputs, loaded.dtypes
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, bytes)
        self._stream = cudart.stream_create()

    def input_shape(self, name: str) -> tuple[int, ...]:
        """The engine's shape for an input, -1 where it is dynamic."""
        return tuple(self.engine.get_tensor_shape(name))

    def _buffer(self, name: str, nbytes: int) -> int:
        ptr, size = self._buffers.get(name, (0, 0))
        if size < nbytes:
            self._cudart.free(ptr)
            ptr = self._cudart.malloc(nbytes)
            self._buffers[name] = (ptr, nbytes)
        return ptr

    def run(self, feeds: dict) -> dict:
        cudart = self._cudart
        missing = [n for n in self.inputs if n not in feeds]
        if missing:
            raise ValueError(f"feeds lacks the engine inputs {missing} (it has {sorted(feeds)})")
        hosts = {}
        for name in self.inputs:
            arr = np.ascontiguousarray(feeds[name], dtype=self.dtypes[name])
            if not self.context.set_input_shape(name, arr.shape):
                raise ValueError(f"input {name!r} of shape {arr.shape} is outside the engine's profile "
                                 f"{self.engine.get_tensor_profile_shape(name, 0)} (min, opt, max)")
            ptr = self._buffer(name, arr.nbytes)
            cudart.memcpy_htod_async(ptr, arr.ctypes.data, arr.nbytes, self._stream)
            self.context.set_tensor_address(name, ptr)
            hosts[name] = arr  # the copy reads it until the stream synchronises
        results = {}
        for name in self.outputs:
            out = np.empty(tuple(self.context.get_tensor_shape(name)), self.dtypes[name])
            self.context.set_tensor_address(name, self._buffer(name, out.nbytes))
            results[name] = out
        if not self.context.execute_async_v3(self._stream):
            raise RuntimeError("TensorRT execute_async_v3 failed (see TensorRT's log above)")
        for name, out in results.items():
            cudart.memcpy_dtoh_async(out.ctypes.data, self._buffers[name][0], out.nbytes, self._stream)
        cudart.stream_synchronize(self._stream)
        return results

    def close(self) -> None:
        for ptr, _ in self._buffers.values():
            self._cudart.free(ptr)
        self._buffers.clear()
        if self._stream:
            self._cudart.stream_destroy(self._stream)
            self._stream = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001, S110  at interpreter shutdown the library may be gone already
            pass
