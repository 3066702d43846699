"""effseg.runtime.sessions.openvino_model: an openvino.Model taken as it is, and the
per-node profile on request only."""
from __future__ import annotations

import numpy as np
import pytest

ov = pytest.importorskip("openvino")

from effseg.runtime.sessions import openvino_model


def _matmul_model(n: int = 5):
    p = ov.opset13.parameter([3, n], np.float32)
    w = np.arange(n * 7, dtype=np.float32).reshape(n, 7) / 10
    return ov.Model([ov.opset13.matmul(p, ov.opset13.constant(w), False, False)], [p]), w


@pytest.mark.parametrize("profile", [False, True])
def test_model_object_and_profile(profile):
    m, w = _matmul_model()
    compiled = openvino_model(m, threads=1, profile=profile)
    req = compiled.create_infer_request()
    x = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    y = req.infer({0: x})[compiled.outputs[0]]
    np.testing.assert_allclose(y, x @ w, rtol=1e-5, atol=1e-5)
    assert compiled.get_property("PERF_COUNT") == ("YES" if profile else "NO")
    timed = sum(pi.real_time.total_seconds() for pi in req.get_profiling_info())
    assert (timed > 0) is profile  # without the profiler every node reads zero
