"""depthwise_conv2d gradients: gradcheck in float64 through the op's autograd, and
float32 / half gradients against autograd through the reference."""
import pytest
import torch
from dw_cases import assert_close, make

from effseg.ops import depthwise_conv2d, depthwise_conv2d_ref

ACTS = [None, "relu", "relu6", "gelu", "silu"]


def _leaves(*ts):
    return [None if t is None else t.detach().clone().requires_grad_(True) for t in ts]


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("backend", ["cpp", "ref"])
def test_gradcheck_float64(require_backend, backend, act):
    require_backend(backend)
    x, w, b = make(1, 2, 4, 5, 3, dtype=torch.float64, seed=1)
    # relu / relu6 kinks: keep pre-activations away from 0 and 6 so that finite
    # differences do not straddle them.
    if act in ("relu", "relu6"):
        b = b.sign() * (b.abs() + 0.5)
    x, w, b = _leaves(x, w, b)

    def f(x, w, b):
        return depthwise_conv2d(x, w, b, padding=1, activation=act, backend=backend)

    assert torch.autograd.gradcheck(f, (x, w, b), eps=1e-6, atol=1e-6, rtol=1e-5,
                                    fast_mode=act is not None)


@pytest.mark.parametrize("kw", [
    {"padding": "same", "dilation": 2},                   # asymmetric: even kernel below
    {"stride": 2, "padding": (1, 2)},
    {"stride": (2, 1), "padding": "valid", "dilation": (1, 2)},
])
def test_gradcheck_geometries(require_backend, kw):
    require_backend("cpp")
    x, w, b = _leaves(*make(1, 2, 7, 6, 4, 3, dtype=torch.float64, seed=2))
    f = lambda x, w, b: depthwise_conv2d(x, w, b, activation="gelu", **kw)
    assert torch.autograd.gradcheck(f, (x, w, b), eps=1e-6, atol=1e-6, rtol=1e-5, fast_mode=True)


def test_gradcheck_without_bias(require_backend):
    require_backend("cpp")
    x, w, _ = _leaves(*make(1, 3, 5, 5, 2, bias=False, dtype=torch.float64, seed=3))
    f = lambda x, w: depthwise_conv2d(x, w, padding="same", activation="silu")
    assert torch.autograd.gradcheck(f, (x, w), eps=1e-6, atol=1e-6, rtol=1e-5, fast_mode=True)


@pytest.mark.parametrize("backend", ["cpp", "triton"])
@pytest.mark.parametrize("act", ACTS)
def test_float32_gradients_match_reference_autograd(require_backend, backend, act):
    require_backend(backend)
    shape = (1, 3, 6, 7) if backend == "triton" else (2, 17, 19, 23)
    x, w, b = make(*shape, 5, seed=4)
    kw = {"stride": 1, "padding": "same", "activation": act}
    gy = torch.randn(shape[:2] + shape[2:])
    got = _leaves(x, w, b)
    depthwise_conv2d(*got, **kw, backend=backend).backward(gy)
    want = _leaves(x.double(), w.double(), b.double())
    depthwise_conv2d_ref(*want, **kw).backward(gy.double())
    for name, g, r in zip(["x", "w", "b"], got, want):
        assert_close(g.grad, r.grad, torch.float32, f"d{name} ({act})")


def test_only_requested_gradients(require_backend):
    require_backend("cpp")
    x, w, b = make(1, 4, 6, 6, 3)
    w.requires_grad_(True)
    depthwise_conv2d(x, w, b, padding=1, activation="relu6").sum().backward()
    assert w.grad is not None and x.grad is None and b.grad is None


def test_half_gradients_keep_dtypes(require_backend):
    require_backend("cpp")
    x, w, b = make(1, 8, 9, 10, 3, dtype=torch.bfloat16, seed=5)
    x, w, b = _leaves(x, w.float(), b.float())
    depthwise_conv2d(x, w, b, padding=1, activation="gelu").float().square().sum().backward()
    assert x.grad.dtype == torch.bfloat16 and w.grad.dtype == torch.float32
    want = _leaves(x.double(), w.double(), b.double())
    depthwise_conv2d_ref(*want, padding=1, activation="gelu").square().sum().backward()
    assert_close(w.grad, want[1].grad, torch.bfloat16, "dw")


def test_double_backward(require_backend):
    """The backward is built from differentiable ops (the op itself, aten's convolution
    backward), so second derivatives work too."""
    require_backend("cpp")
    x, w, b = _leaves(*make(1, 2, 4, 4, 3, dtype=torch.float64, seed=6))
    for act in ("silu", "gelu"):
        def f(x, w, b, act=act):
            return depthwise_conv2d(x, w, b, padding=1, activation=act)

        assert torch.autograd.gradgradcheck(f, (x, w, b), eps=1e-6, atol=1e-5, rtol=1e-4,
                                            fast_mode=True)
