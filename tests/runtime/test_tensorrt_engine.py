"""The one TensorRT engine loader (effseg.runtime.tensorrt_runner.Engine), as the
runtime's TensorRTRunner and effseg.compile's TensorRT backend use it. TensorRT cannot be
installed here, so a stand-in module plays its Python API: these tests check effseg's
side (refusals, I/O discovery, dtypes), they make no claim about TensorRT itself."""
import sys
import types

import numpy as np
import pytest
import torch

from effseg.runtime.tensorrt_runner import Engine


class _Engine:
    def __init__(self, io):
        self._io = io  # [(name, mode, numpy dtype)]
        self.num_io_tensors = len(io)

    def get_tensor_name(self, i):
        return self._io[i][0]

    def get_tensor_mode(self, name):
        return next(m for n, m, _ in self._io if n == name)

    def get_tensor_dtype(self, name):
        return next(d for n, _, d in self._io if n == name)

    def create_execution_context(self):
        return object()


def _fake_trt(version="10.3.0", engine=None):
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.TensorIOMode = types.SimpleNamespace(INPUT="in", OUTPUT="out")

    class Logger:
        WARNING = 2

        def __init__(self, level):
            self.level = level

    class Runtime:
        def __init__(self, logger):
            self.logger = logger

        def deserialize_cuda_engine(self, data):
            return engine

    trt.Logger, trt.Runtime = Logger, Runtime
    trt.nptype = lambda dt: dt
    return trt


@pytest.fixture
def fake_trt(monkeypatch):
    def install(**kw):
        mod = _fake_trt(**kw)
        monkeypatch.setitem(sys.modules, "tensorrt", mod)
        return mod
    return install


def test_an_engine_that_does_not_deserialize_is_an_error(fake_trt):
    fake_trt(engine=None)
    with pytest.raises(RuntimeError, match="could not deserialize the engine model.engine"):
        Engine(b"not an engine", "model.engine")


def test_old_tensorrt_is_refused(fake_trt):
    fake_trt(version="8.6.1", engine=_Engine([]))
    with pytest.raises(RuntimeError, match="8.6.1 is too old"):
        Engine(b"x")


def test_io_names_and_dtypes(fake_trt):
    fake_trt(engine=_Engine([("x", "in", np.float16), ("logits", "out", np.float32), ("aux", "out", np.int32)]))
    e = Engine(b"x")
    assert e.inputs == ["x"] and e.outputs == ["logits", "aux"]
    assert e.dtypes == {"x": np.dtype(np.float16), "logits": np.dtype(np.float32), "aux": np.dtype(np.int32)}


def test_compile_backend_uses_the_same_loader(fake_trt):
    from effseg.compile.backends.tensorrt import TrtRunner

    fake_trt(engine=_Engine([("x", "in", np.float16), ("out0", "out", np.float32)]))
    run = TrtRunner(b"x", None, torch.device("cpu"))
    assert run.input == "x" and run.outputs == ["out0"]
    assert run.dtypes == {"x": torch.float16, "out0": torch.float32}
    fake_trt(engine=None)
    with pytest.raises(RuntimeError, match="could not deserialize"):
        TrtRunner(b"x", None, torch.device("cpu"))
