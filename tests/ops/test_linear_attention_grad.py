"""Gradients of linear_attention: gradcheck in float64 and fp32 parity with the reference."""
import pytest
import torch
from attention_cases import KINDS, assert_close, make_qkv, well_posed

from effseg.ops import linear_attention, linear_attention_ref

FP32_REL = 2e-5


def _inputs(shape, kind, dtype=torch.float64, device="cpu"):
    for seed in range(20):
        qkv = make_qkv(*shape, dtype=dtype, seed=seed, device=device, requires_grad=True)
        if well_posed(qkv[0].detach(), qkv[1].detach(), kind):
            return qkv
    raise AssertionError("no well-posed inputs")


GRADCHECK_SHAPES = [(1, 1, 1, 3), (2, 3, 5, 7), (1, 4, 2, 37)]


@pytest.mark.parametrize("backend", ["cpp", "triton", "ref"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", GRADCHECK_SHAPES, ids=lambda s: "B{}-Ck{}-Cv{}-N{}".format(*s))
def test_gradcheck_float64(shape, kind, backend, require_backend):
    require_backend(backend)
    fast = backend == "triton" and shape != GRADCHECK_SHAPES[0]
    q, k, v = _inputs(shape, kind)

    def f(a, b, c):
        return linear_attention(a, b, c, kind=kind, backend=backend)

    # The Triton interpreter is slow: past the tiniest shape, gradcheck's fast mode
    # (random projections of the Jacobian instead of every column).
    assert torch.autograd.gradcheck(f, (q, k, v), eps=1e-6, atol=1e-7, rtol=1e-5, fast_mode=fast)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", [(2, 17, 3, 300), (1, 3, 64, 1031), (3, 64, 17, 257)])
def test_cpp_fp32_gradients_match_ref(shape, kind, require_backend):
    require_backend("cpp")
    q, k, v = _inputs(shape, kind, dtype=torch.float32)
    out = linear_attention(q, k, v, kind=kind, backend="cpp")
    gy = torch.randn_like(out)
    got = torch.autograd.grad(out, (q, k, v), gy)
    ref = linear_attention_ref(q.double(), k.double(), v.double(), kind=kind)
    want = torch.autograd.grad(ref, (q, k, v), gy.double())
    for name, a, b in zip("qkv", got, want):
        assert a.dtype == torch.float32
        assert_close(a, b, FP32_REL, f"d{name} {kind} {shape}")


@pytest.mark.parametrize("kind", KINDS)
def test_triton_fp32_gradients_match_ref(kind, require_backend):
    require_backend("triton")
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    q, k, v = _inputs((2, 5, 20, 45), kind, dtype=torch.float32, device=dev)
    out = linear_attention(q, k, v, kind=kind, backend="triton")
    gy = torch.randn_like(out)
    got = torch.autograd.grad(out, (q, k, v), gy)
    ref = linear_attention_ref(q.double(), k.double(), v.double(), kind=kind)
    want = torch.autograd.grad(ref, (q, k, v), gy.double())
    for name, a, b in zip("qkv", got, want):
        assert_close(a, b, FP32_REL, f"triton d{name} {kind}")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cpp_half_gradients(dtype, require_backend):
    require_backend("cpp")
    q, k, v = _inputs((1, 6, 10, 80), "softplus", dtype=dtype)
    out = linear_attention(q, k, v, kind="softplus", backend="cpp")
    gy = torch.randn_like(out)
    got = torch.autograd.grad(out, (q, k, v), gy)
    ref = linear_attention_ref(q.double(), k.double(), v.double(), kind="softplus")
    want = torch.autograd.grad(ref, (q, k, v), gy.double())
    for name, a, b in zip("qkv", got, want):
        assert a.dtype == dtype
        assert_close(a, b, 2e-2, f"d{name} {dtype}")


@pytest.mark.parametrize("backend", ["cpp", "ref", "triton"])
def test_zero_columns_have_zero_gradient(backend, require_backend):
    """A zero column of q or k maps to a zero feature; its gradient is zero, not NaN."""
    require_backend(backend)
    q, k, v = (x.detach() for x in make_qkv(1, 4, 3, 9, seed=1))
    q[..., 2] = 0
    k[..., 5] = 0
    q.requires_grad_(True)
    k.requires_grad_(True)
    v.requires_grad_(True)
    out = linear_attention(q, k, v, kind="taylor", backend=backend)
    dq, dk, dv = torch.autograd.grad(out, (q, k, v), torch.randn_like(out))
    for g in (dq, dk, dv):
        assert bool(torch.isfinite(g).all())
    assert bool((dq[..., 2] == 0).all()) and bool((dk[..., 5] == 0).all())


def test_only_v_requires_grad(require_backend):
    require_backend("cpp")
    q, k, v = make_qkv(1, 3, 4, 20)
    v.requires_grad_(True)
    out = linear_attention(q, k, v, kind="taylor", backend="cpp")
    (dv,) = torch.autograd.grad(out.sum(), (v,))
    ref = linear_attention_ref(q, k, v, kind="taylor")
    (want,) = torch.autograd.grad(ref.sum(), (v,))
    assert_close(dv, want, FP32_REL, "dv")
