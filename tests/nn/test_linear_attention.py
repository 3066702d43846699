"""effseg.nn.LinearAttention against GeoSeg-style forwards written out here."""
import pytest
import torch
import torch.nn.functional as F
from attention_cases import assert_close

from effseg.nn import LinearAttention


def _geoseg_forward(m, x):
    """GeoSeg's PAM_Module / Attention / LinearAttention forward, einsum and all, on m's
    parameters (the l2 norm and the softplus features as GeoSeg computes them)."""
    b, c, h, w = x.shape
    Q = m.query_conv(x).view(b, -1, w * h)
    K = m.key_conv(x).view(b, -1, w * h)
    V = m.value_conv(x).view(b, -1, w * h)
    if m.kind == "softplus":
        Q = F.softplus(Q).permute(-3, -1, -2)
        K = F.softplus(K)
        KV = torch.einsum("bmn, bcn->bmc", K, V)
        norm = 1 / torch.einsum("bnc, bc->bn", Q, torch.sum(K, dim=-1) + m.eps)
        out = torch.einsum("bnm, bmc, bn->bcn", Q, KV, norm)
    else:
        Q = torch.einsum("bcn, bn->bcn", Q, 1 / torch.norm(Q, p=2, dim=-2)).permute(-3, -1, -2)
        K = torch.einsum("bcn, bn->bcn", K, 1 / torch.norm(K, p=2, dim=-2))
        tailor = 1 / (w * h + torch.einsum("bnc, bc->bn", Q, torch.sum(K, dim=-1) + m.eps))
        vsum = torch.einsum("bcn->bc", V).unsqueeze(-1).expand(-1, c, w * h)
        matrix = torch.einsum("bmn, bcn->bmc", K, V)
        msum = vsum + torch.einsum("bnm, bmc->bcn", Q, matrix)
        out = torch.einsum("bcn, bn->bcn", msum, tailor)
    out = m.gamma * out.reshape(b, c, h, w)
    return x + out if m.residual else out


VARIANTS = {"manet_pam": ("softplus", True), "abcnet": ("taylor", False), "banet": ("taylor", True)}


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("backend", ["auto", "ref"])
def test_matches_geoseg_forward(variant, backend):
    torch.manual_seed(0)
    m = getattr(LinearAttention, variant)(32, backend=backend)
    assert (m.kind, m.residual) == VARIANTS[variant]
    with torch.no_grad():
        m.gamma.fill_(0.7)
    x = torch.randn(2, 32, 7, 9)
    assert_close(m(x), _geoseg_forward(m, x), 1e-5, variant)


def test_parameter_names_shapes_and_state_dict_load():
    m = LinearAttention(64)
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes == {"gamma": (1,), "query_conv.weight": (8, 64, 1, 1), "query_conv.bias": (8,),
                      "key_conv.weight": (8, 64, 1, 1), "key_conv.bias": (8,),
                      "value_conv.weight": (64, 64, 1, 1), "value_conv.bias": (64,)}
    assert float(m.gamma.detach()) == 0.0
    other = LinearAttention(64, kind="softplus", residual=True)
    other.load_state_dict({k: torch.randn_like(v) for k, v in m.state_dict().items()})
    m.load_state_dict(other.state_dict())
    x = torch.randn(1, 64, 5, 5)
    m.kind, m.residual = "softplus", True
    assert torch.equal(m(x), other(x))


def test_starts_as_zero_or_identity_and_trains():
    torch.manual_seed(1)
    x = torch.randn(2, 16, 6, 6)
    a = LinearAttention(16, scale=4)
    r = LinearAttention.manet_pam(16, scale=4)
    assert torch.equal(a(x), torch.zeros_like(x))
    assert torch.equal(r(x), x)
    a(x).sum().backward()
    assert a.gamma.grad is not None and float(a.gamma.grad.abs().sum()) > 0
    with torch.no_grad():
        a.gamma.fill_(0.5)
    a.zero_grad()
    (a(x) ** 2).sum().backward()
    for name, p in a.named_parameters():
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()), name
        assert float(p.grad.abs().max()) > 0, name


def test_gradients_match_geoseg(require_backend):
    require_backend("cpp")
    torch.manual_seed(2)
    m = LinearAttention.banet(24, backend="cpp")
    with torch.no_grad():
        m.gamma.fill_(1.3)
    x = torch.randn(2, 24, 5, 11, requires_grad=True)
    gy = torch.randn_like(x)
    got = torch.autograd.grad(m(x), [x, *m.parameters()], gy)
    want = torch.autograd.grad(_geoseg_forward(m, x), [x, *m.parameters()], gy)
    for a, b in zip(got, want):
        assert_close(a, b, 1e-4, "gradient")


def test_errors():
    with pytest.raises(ValueError, match="in_places // scale must be >= 1"):
        LinearAttention(4)
    with pytest.raises(ValueError, match="kind must be one of"):
        LinearAttention(16, kind="relu")
    with pytest.raises(ValueError, match="backend must be one of"):
        LinearAttention(16, backend="gpu")
    with pytest.raises(ValueError, match="eps must be > 0"):
        LinearAttention(16, eps=0)
    with pytest.raises(ValueError, match=r"x must be \(B, C=16, H, W\)"):
        LinearAttention(16)(torch.randn(1, 8, 4, 4))
