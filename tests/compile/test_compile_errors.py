"""effseg.compile: argument errors name the argument; unusable backends say why."""
from __future__ import annotations

import pytest
import torch
from compile_cases import ConvBNReLU

import effseg


@pytest.fixture
def model():
    return ConvBNReLU().eval()


def test_model_must_be_module():
    with pytest.raises(TypeError, match="model"):
        effseg.compile(lambda x: x, input_shape=(1, 3, 8, 8))


def test_unknown_backend(model):
    with pytest.raises(ValueError, match="backend"):
        effseg.compile(model, input_shape=(1, 3, 8, 8), backend="tvm")


@pytest.mark.parametrize("dtype", [torch.int32, "float32", torch.float64])
def test_bad_dtype(model, dtype):
    with pytest.raises(TypeError, match="dtype"):
        effseg.compile(model, input_shape=(1, 3, 8, 8), dtype=dtype)


def test_example_required(model):
    with pytest.raises(ValueError, match="example_input or input_shape"):
        effseg.compile(model)


@pytest.mark.parametrize("shape", [(1, 3, 0, 8), (), "1x3x8x8", (1, 3, 8.0, 8)])
def test_bad_input_shape(model, shape):
    with pytest.raises(ValueError, match="input_shape"):
        effseg.compile(model, input_shape=shape)


def test_inconsistent_example(model):
    with pytest.raises(ValueError, match="input_shape"):
        effseg.compile(model, example_input=torch.randn(1, 3, 8, 8), input_shape=(1, 3, 16, 16))
    with pytest.raises(TypeError, match="example_input"):
        effseg.compile(model, example_input=[[0.0]])
    with pytest.raises(TypeError, match="example_input"):
        effseg.compile(model, example_input=torch.zeros(1, 3, 8, 8, dtype=torch.int64))


def test_bad_device_and_check(model):
    with pytest.raises(ValueError, match="device"):
        effseg.compile(model, input_shape=(1, 3, 8, 8), device="nowhere")
    with pytest.raises(TypeError, match="check"):
        effseg.compile(model, input_shape=(1, 3, 8, 8), check="yes")


def test_bad_backend_options(model):
    with pytest.raises(TypeError, match="onnxruntime"):
        effseg.compile(model, input_shape=(1, 3, 8, 8), backend="onnxruntime", threads=2)
    with pytest.raises(TypeError, match="trial"):
        effseg.compile(model, input_shape=(1, 3, 8, 8), backend="eager", trial=True)
    from effseg.compile.backends import inductor, tensorrt

    with pytest.raises(TypeError, match=r"'inductor' options must be among \[.*'mode'.*\], got \['modes'\]"):
        inductor.build(None, None, device=None, options={"modes": "x"})
    with pytest.raises(TypeError, match=r"'tensorrt' options must be among \[.*'precision'.*\], got \['dtype'\]"):
        tensorrt.build(None, None, device=None, options={"dtype": "fp16"})


def test_tensorrt_unusable_says_why(model):
    try:
        import tensorrt  # noqa: F401
    except Exception:  # noqa: BLE001
        missing = "tensorrt"
    else:
        missing = "CUDA|builder"
    with pytest.raises(RuntimeError, match=missing):
        effseg.compile(model, input_shape=(1, 3, 8, 8), backend="tensorrt")


def test_call_rejects_non_tensor(model):
    cm = effseg.compile(model, input_shape=(1, 3, 8, 8), backend="eager")
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        cm([1.0])


def test_inductor_options_must_be_a_dict(model):
    with pytest.raises(TypeError, match="options"):
        effseg.compile(model, input_shape=(1, 3, 8, 8), backend="inductor", options="freezing")
