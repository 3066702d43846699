"""effseg.nn.Mamba against a plain-PyTorch statement of mamba_ssm's Mamba forward
(its non-fused path) scanning with effseg.ops.selective_scan_ref."""
import math

import pytest
import torch
import torch.nn.functional as F

from effseg.nn import Mamba
from effseg.ops import selective_scan_ref

# fp32 kernels against the float64 statement, relative to the output's max magnitude.
FP32_RTOL = 2e-5
FP32_GRAD_RTOL = 1e-4


def _restated(m: Mamba, x):
    """mamba_ssm's Mamba.forward without the fused kernels, written out step by step."""
    def w(p):
        return None if p is None else p.to(x.dtype)

    xz = F.linear(x, w(m.in_proj.weight), w(m.in_proj.bias)).transpose(1, 2)
    u, z = xz.chunk(2, dim=1)
    u = F.silu(F.conv1d(F.pad(u, (m.d_conv - 1, 0)), w(m.conv1d.weight), w(m.conv1d.bias),
                        groups=m.d_inner))
    dbl = F.linear(u.transpose(1, 2), w(m.x_proj.weight))
    dt, B, C = dbl.split([m.dt_rank, m.d_state, m.d_state], dim=-1)
    dt = (dt @ w(m.dt_proj.weight).t()).transpose(1, 2)
    y = selective_scan_ref(u, dt, -torch.exp(w(m.A_log)), B.transpose(1, 2), C.transpose(1, 2),
                           w(m.D), z, w(m.dt_proj.bias), True)
    return F.linear(y.transpose(1, 2), w(m.out_proj.weight), w(m.out_proj.bias))


def _model(d_model=12, seed=0, **kw):
    torch.manual_seed(seed)
    m = Mamba(d_model, **kw)
    with torch.no_grad():  # away from the init's symmetric values, so every term matters
        m.A_log.add_(0.3 * torch.randn_like(m.A_log))
        m.D.add_(0.5 * torch.randn_like(m.D))
        m.dt_proj.bias.add_(0.5 * torch.randn_like(m.dt_proj.bias))
    return m


def _rel(got, want):
    return ((got.double() - want.double()).abs().max() / want.double().abs().max()).item()


@pytest.mark.parametrize("length", [1, 3, 17, 64])
@pytest.mark.parametrize("backend", ["auto", "cpp", "chunked", "ref"])
def test_forward_matches_the_statement(length, backend, require_backend):
    if backend == "cpp":
        require_backend("cpp")
    m = _model(backend=backend, d_state=8)
    x = torch.randn(2, length, 12)
    with torch.no_grad():
        got = m(x)
        want = _restated(m, x.double())
    assert got.shape == x.shape and got.dtype == torch.float32
    assert _rel(got, want) < FP32_RTOL


@pytest.mark.parametrize("kw", [{"d_state": 1, "d_conv": 1}, {"dt_rank": 3, "expand": 1.5},
                                {"d_conv": 3, "bias": True, "conv_bias": False}], ids=str)
def test_options_match_the_statement(kw, require_backend):
    require_backend("cpp")
    m = _model(d_model=10, **kw)
    x = torch.randn(3, 9, 10)
    with torch.no_grad():
        got, want = m(x), _restated(m, x.double())
    assert _rel(got, want) < FP32_RTOL


def test_triton_backend_matches_the_statement(require_backend):
    require_backend("triton")
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    m = _model(d_model=4, d_state=4, backend="triton").to(dev)
    x = torch.randn(1, 5, 4, device=dev)
    with torch.no_grad():
        got, want = m(x), _restated(m, x.double())
    assert _rel(got, want) < FP32_RTOL


def test_causal():
    """Output at step t depends on inputs up to t only (the conv is left-padded)."""
    m = _model().double()
    x = torch.randn(1, 10, 12, dtype=torch.float64)
    x2 = x.clone()
    x2[:, 6:] += torch.randn(1, 4, 12, dtype=torch.float64)
    with torch.no_grad():
        a, b = m(x), m(x2)
    assert torch.equal(a[:, :6], b[:, :6])
    assert not torch.allclose(a[:, 6:], b[:, 6:])


def test_gradcheck_float64(require_backend):
    require_backend("cpp")
    m = _model(d_model=4, d_state=2, d_conv=2).double()
    x = torch.randn(1, 5, 4, dtype=torch.float64, requires_grad=True)
    params = list(m.parameters())
    names = [n for n, _ in m.named_parameters()]

    def f(x, *ps):
        return torch.func.functional_call(m, dict(zip(names, ps)), (x,))

    # fast_mode: checks random projections of the Jacobian (all ~150 columns cost ~10 s).
    assert torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-6, rtol=1e-5,
                                    fast_mode=True)


@pytest.mark.parametrize("backend", ["auto", "chunked"])
def test_fp32_gradients_match_the_statement(backend, require_backend):
    if backend == "auto":
        require_backend("cpp")
    m = _model(backend=backend)
    x = torch.randn(2, 23, 12, requires_grad=True)
    out = m(x)
    g = torch.randn_like(out)
    got = torch.autograd.grad(out, [x, *m.parameters()], g)
    m64 = _model().double()
    m64.load_state_dict(m.state_dict())
    x64 = x.detach().double().requires_grad_(True)
    want = torch.autograd.grad(_restated(m64, x64), [x64, *m64.parameters()], g.double())
    for (name, _), a, b in zip([("x", None), *m.named_parameters()], got, want):
        assert _rel(a, b) < FP32_GRAD_RTOL, name


def test_mamba_ssm_parameter_names_and_shapes():
    m = Mamba(64, d_state=16, d_conv=4, expand=2)
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes == {
        "A_log": (128, 16), "D": (128,), "in_proj.weight": (256, 64),
        "conv1d.weight": (128, 1, 4), "conv1d.bias": (128,), "x_proj.weight": (4 + 32, 128),
        "dt_proj.weight": (128, 4), "dt_proj.bias": (128,), "out_proj.weight": (64, 128)}
    assert m.conv1d.padding == (3,) and m.conv1d.groups == 128


def test_initialisation():
    torch.manual_seed(0)
    m = Mamba(32, d_state=8, dt_min=0.01, dt_max=0.05)
    assert torch.equal(m.A_log, torch.log(torch.arange(1, 9.0)).repeat(64, 1))
    assert torch.equal(m.D, torch.ones(64))
    dt = F.softplus(m.dt_proj.bias.detach())
    assert dt.min() >= 0.01 * (1 - 1e-5) and dt.max() <= 0.05 * (1 + 1e-5)
    std = m.dt_rank ** -0.5
    assert m.dt_proj.weight.abs().max() <= std
    c = Mamba(32, dt_init="constant", dt_scale=2.0)
    assert torch.allclose(c.dt_proj.weight, torch.full_like(c.dt_proj.weight, 2 * std))
    assert m.dt_rank == math.ceil(32 / 16)


def test_bad_arguments():
    with pytest.raises(ValueError, match="d_model"):
        Mamba(0)
    with pytest.raises(ValueError, match="d_state"):
        Mamba(8, d_state=0)
    with pytest.raises(ValueError, match="d_conv"):
        Mamba(8, d_conv=1.5)
    with pytest.raises(ValueError, match="expand"):
        Mamba(8, expand=0)
    with pytest.raises(ValueError, match="dt_rank"):
        Mamba(8, dt_rank=0)
    with pytest.raises(ValueError, match="dt_min"):
        Mamba(8, dt_min=0.2, dt_max=0.1)
    with pytest.raises(ValueError, match="dt_init"):
        Mamba(8, dt_init="xavier")
    with pytest.raises(ValueError, match="backend"):
        Mamba(8, backend="cuda")
    m = Mamba(8)
    with pytest.raises(ValueError, match=r"x must be \(B, L, d_model=8\)"):
        m(torch.randn(2, 8, 3))
    with pytest.raises(ValueError, match="x must be"):
        m(torch.randn(8, 3))
    with pytest.raises(TypeError, match="x must be a Tensor"):
        m([[0.0] * 8])
