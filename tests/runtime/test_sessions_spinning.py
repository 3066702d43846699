"""Sessions effseg builds wait passively unless asked to spin (effseg/runtime/sessions.py)."""
import importlib

import pytest

onnx = pytest.importorskip("onnx", reason="onnx is needed to build the tiny model")
pytest.importorskip("onnxruntime", reason="onnxruntime is needed to build a session")

from onnx import TensorProto, helper  # noqa: E402

from effseg.runtime.sessions import SPIN_KEYS, SPINNING_ENV, ort_session  # noqa: E402


def _relu():
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    return helper.make_model(g)


def _spin(sess) -> list[str]:
    so = sess.get_session_options()
    return [so.get_session_config_entry(k) for k in SPIN_KEYS]


def test_sessions_do_not_spin_by_default(monkeypatch):
    monkeypatch.delenv(SPINNING_ENV, raising=False)
    assert _spin(ort_session(_relu())) == ["0", "0"]


def test_spinning_comes_back_by_argument_or_environment(monkeypatch):
    monkeypatch.delenv(SPINNING_ENV, raising=False)
    assert _spin(ort_session(_relu(), spinning=True)) == ["1", "1"]
    monkeypatch.setenv(SPINNING_ENV, "1")
    assert _spin(ort_session(_relu())) == ["1", "1"]
    assert _spin(ort_session(_relu(), spinning=False)) == ["0", "0"]  # the argument wins


def test_bad_spinning_values_name_the_setting(monkeypatch):
    monkeypatch.delenv(SPINNING_ENV, raising=False)
    with pytest.raises(ValueError, match="spinning must be True, False or None"):
        ort_session(_relu(), spinning="yes")
    monkeypatch.setenv(SPINNING_ENV, "sometimes")
    with pytest.raises(ValueError, match=f"{SPINNING_ENV} must be 1 or 0"):
        ort_session(_relu())


def test_compiled_models_get_passive_sessions(monkeypatch):
    torch = pytest.importorskip("torch", reason="effseg.compile needs torch")
    import effseg

    monkeypatch.delenv(SPINNING_ENV, raising=False)
    net = torch.nn.Conv2d(3, 2, 1)
    seen = []
    backend = importlib.import_module("effseg.compile.backends.onnxruntime")  # effseg.compile is the function
    real = backend.ort_session
    monkeypatch.setattr(backend, "ort_session", lambda *a, **k: seen.append(real(*a, **k)) or seen[-1])
    effseg.compile(net, input_shape=(1, 3, 4, 4), backend="onnxruntime")
    assert seen and all(_spin(s) == ["0", "0"] for s in seen)
