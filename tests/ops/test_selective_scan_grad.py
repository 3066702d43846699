"""Gradients of the selective scan: gradcheck in float64 and parity with the reference."""
import pytest
import torch
from scan_cases import FLAG_NAMES, assert_close, call, make_inputs

from effseg.ops import selective_scan, selective_scan_ref

GRAD_INPUTS = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias", "initial_state")
FORMS = [("var", "var"), ("const", 2), (2, "const"), (4, 4), ("const", "const")]


def _grad_fn(kw, backend, with_last):
    names = [k for k in GRAD_INPUTS if kw[k] is not None]

    def f(*xs):
        args = dict(kw, **dict(zip(names, xs)))
        y, h = call(selective_scan if backend != "ref" else selective_scan_ref, args,
                    **({} if backend == "ref" else {"backend": backend}))
        return (y, h) if with_last else y

    return f, [kw[k].detach().clone().requires_grad_(True) for k in names], names


@pytest.mark.parametrize("backend", ["cpp", "chunked"])
@pytest.mark.parametrize("forms", FORMS, ids=str)
@pytest.mark.parametrize("softplus", [True, False])
def test_gradcheck_float64(backend, forms, softplus, require_backend):
    require_backend(backend)
    flags = [f for f in FLAG_NAMES if f != "softplus"] + (["softplus"] if softplus else [])
    kw = make_inputs(bt=2, dm=4, length=5, n=3, b_form=forms[0], c_form=forms[1],
                     dtype=torch.float64, flags=flags, seed=hash(forms) % 100)
    f, xs, _ = _grad_fn(kw, backend, with_last=True)
    assert torch.autograd.gradcheck(f, xs, eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("length,n,forms", [(1, 1, ("var", "var")), (63, 16, (2, 4)),
                                            (200, 4, ("const", "var"))])
def test_cpp_fp32_gradients_match_float64_ref(length, n, forms, require_backend):
    require_backend("cpp")
    kw = make_inputs(bt=2, dm=8, length=length, n=n, b_form=forms[0], c_form=forms[1])
    kw64 = {k: (v.double() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    f, xs, names = _grad_fn(kw, "cpp", with_last=True)
    f64, xs64, _ = _grad_fn(kw64, "ref", with_last=True)
    gen = torch.Generator().manual_seed(1)
    y, h = f(*xs)
    gy, gh = torch.randn(y.shape, generator=gen), torch.randn(h.shape, generator=gen)
    got = torch.autograd.grad((y, h), xs, (gy, gh))
    y64, h64 = f64(*xs64)
    want = torch.autograd.grad((y64, h64), xs64, (gy.double(), gh.double()))
    for name, g, w in zip(names, got, want):
        assert g.dtype == kw[name].dtype
        assert_close(g, w, 2e-4, f"d{name}")


@pytest.mark.parametrize("forms", [("var", "var"), ("const", 2), (4, "const")], ids=str)
def test_triton_gradients_match_ref(forms, require_backend):
    """float64 through the Triton kernel against the (gradchecked) reference's autograd."""
    require_backend("triton")
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    kw = make_inputs(bt=2, dm=4, length=19, n=4, b_form=forms[0], c_form=forms[1],
                     dtype=torch.float64, device=dev)
    f, xs, names = _grad_fn(kw, "triton", with_last=True)
    fr, xr, _ = _grad_fn(kw, "ref", with_last=True)
    y, h = f(*xs)
    yr, hr = fr(*xr)
    assert_close(y, yr, 1e-10, "y")
    gy, gh = torch.randn_like(y), torch.randn_like(h)
    got = torch.autograd.grad((y, h), xs, (gy, gh))
    want = torch.autograd.grad((yr, hr), xr, (gy, gh))
    for name, g, w in zip(names, got, want):
        assert_close(g.cpu(), w.cpu(), 1e-9, f"triton d{name}")


def test_gradients_flow_only_to_inputs_that_need_them(require_backend):
    require_backend("cpp")
    kw = make_inputs(bt=1, dm=2, length=6, n=2)
    u = kw["u"].clone().requires_grad_(True)
    kw["u"] = u
    y, _ = call(selective_scan, kw)
    y.sum().backward()
    assert u.grad is not None and torch.isfinite(u.grad).all()
    assert kw["A"].grad is None
