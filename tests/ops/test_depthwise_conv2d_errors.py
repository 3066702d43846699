"""Bad input to depthwise_conv2d raises an error that names the argument."""
import re

import pytest
import torch
from dw_cases import make

from effseg.ops import depthwise_conv2d, depthwise_conv2d_ref


def _run(x=None, w=None, b="default", **kw):
    x0, w0, b0 = make(1, 4, 8, 8, 3)
    return depthwise_conv2d(x0 if x is None else x, w0 if w is None else w,
                            b0 if isinstance(b, str) else b, **kw)


@pytest.mark.parametrize("args,exc,needle", [
    ({"x": torch.randn(4, 8, 8)}, ValueError, "x must be 4-D"),
    ({"x": torch.randn(1, 4, 8, 8).long()}, TypeError, "x must be float16"),
    ({"x": [[1.0]]}, TypeError, "x must be a torch.Tensor"),
    ({"x": torch.randn(1, 0, 8, 8), "w": torch.randn(0, 1, 3, 3), "b": None}, ValueError, "x must be (batch, channels"),
    ({"w": torch.randn(4, 3, 3)}, ValueError, "weight must be 4-D"),
    ({"w": torch.randn(5, 1, 3, 3)}, ValueError, "weight must have shape (channels, 1, kH, kW) = (4, 1, kH, kW)"),
    ({"w": torch.randn(4, 2, 3, 3)}, ValueError, "weight must have shape"),
    ({"w": torch.randn(4, 1, 3, 3).int()}, TypeError, "weight must be float16"),
    ({"w": torch.randn(4, 1, 32, 3), "padding": 16}, ValueError, "kernel size must be in [1, 31]"),
    ({"w": torch.randn(4, 1, 3, 0)}, ValueError, "kernel size must be in [1, 31]"),
    ({"b": torch.randn(5)}, ValueError, "bias must have shape (channels,) = (4,)"),
    ({"b": torch.randn(4, 1)}, ValueError, "bias must be 1-D"),
    ({"b": torch.arange(4)}, TypeError, "bias must be float16"),
    ({"stride": 0}, ValueError, "stride must be >= 1"),
    ({"stride": (1, 2, 3)}, TypeError, "stride must be an int or a pair"),
    ({"stride": 1.5}, TypeError, "stride must be an int or a pair"),
    ({"dilation": (1, 0)}, ValueError, "dilation must be >= 1"),
    ({"padding": -1}, ValueError, "padding must be >= 0"),
    ({"padding": "full"}, ValueError, "padding must be an int, a pair of ints, 'same' or 'valid'"),
    ({"padding": "same", "stride": 2}, ValueError, "padding='same' is not supported for strided"),
    ({"padding": 0, "dilation": 4}, ValueError, "smaller than the dilated kernel"),
    ({"activation": "tanh"}, ValueError, "activation must be one of"),
    ({"activation": "GELU"}, ValueError, "activation must be one of"),
    ({"backend": "cuda"}, ValueError, "backend must be one of"),
])
def test_bad_input_names_argument(args, exc, needle):
    with pytest.raises(exc, match=re.escape(needle)):
        _run(**args)


def test_mixed_devices_are_rejected_meta():
    """Checked without a GPU through the meta device, which every torch build has."""
    _, w, _ = make(1, 4, 8, 8, 3)
    with pytest.raises(ValueError, match="weight is on meta but x is on cpu"):
        _run(w=w.to("meta"))
    with pytest.raises(ValueError, match="bias is on meta"):
        _run(b=torch.zeros(4, device="meta"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="mixed CPU/CUDA needs a CUDA device")
def test_mixed_devices_are_rejected_cuda():
    _, w, _ = make(1, 4, 8, 8, 3)
    with pytest.raises(ValueError, match="weight is on cuda"):
        _run(w=w.cuda())


def test_cpp_backend_needs_cpu_tensors(require_backend):
    require_backend("cpp")
    x, w, b = make(1, 4, 8, 8, 3, device="meta")
    with pytest.raises(ValueError, match="backend='cpp' runs on CPU tensors"):
        depthwise_conv2d(x, w, b, backend="cpp")


def test_kernel_validates_raw_arguments(require_backend):
    """The C++ entry point checks its own arguments (it is reachable from Python)."""
    require_backend("cpp")
    from effseg import _native

    C = _native.require()
    big = _native.buf(torch.empty(40 * 40))
    none = (0, 0)
    with pytest.raises(ValueError, match="kernel sides must be in"):
        C.depthwise_conv2d_fwd("float32", 1, 1, 4, 4, 40, 3, 1, 1, 1, 1, 0, 0, 1, 1, big, big, none, 0, big)
    with pytest.raises(ValueError, match="dtype must be"):
        C.depthwise_conv2d_fwd("int8", 1, 1, 4, 4, 3, 3, 1, 1, 1, 1, 0, 0, 1, 1, big, big, none, 0, big)
    with pytest.raises(ValueError, match="act must be"):
        C.depthwise_conv2d_fwd("float32", 1, 1, 4, 4, 3, 3, 1, 1, 1, 1, 0, 0, 1, 1, big, big, none, 7, big)
    with pytest.raises(ValueError, match="x is required"):
        C.depthwise_conv2d_fwd("float32", 1, 1, 4, 4, 3, 3, 1, 1, 1, 1, 0, 0, 2, 2, none, big, none, 0, big)


@pytest.mark.parametrize("activation", [None, "relu", "relu6", "gelu", "silu"])
def test_infinite_input_stays_non_finite(require_backend, activation):
    """+-Inf in x: wherever the reference is non-finite the kernel is too (it may give
    +-inf where the reference gives NaN: documented in depthwise_conv2d's docstring)."""
    require_backend("cpp")
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(1, 3, 9, 9, generator=g), torch.randn(3, 1, 3, 3, generator=g)
    x[0, 0, 4, 4], x[0, 1, 0, 0], x[0, 2, 8, 3] = float("inf"), -float("inf"), float("inf")
    got = depthwise_conv2d(x, w, padding=1, activation=activation, backend="cpp")
    want = depthwise_conv2d_ref(x, w, padding=1, activation=activation)
    assert torch.equal(got.isfinite(), want.isfinite())
    fin = want.isfinite()
    torch.testing.assert_close(got[fin], want[fin])
