"""cross_scan_ref / cross_merge_ref / cross_selective_scan (SS2D's four-direction scan)."""
import sys

import pytest
import torch

from effseg.ops import selective_scan_ref
from effseg.ops.cross_selective_scan import (
    cross_merge_ref,
    cross_scan_maps,
    cross_scan_ref,
    cross_selective_scan,
    cross_selective_scan_ref,
)


def _loop_cross_scan(x):
    """The four orders written out element by element."""
    B, D, H, W = x.shape
    out = torch.empty(B, 4, D, H * W, dtype=x.dtype)
    t = 0
    for h in range(H):
        for w in range(W):
            out[:, 0, :, t] = x[:, :, h, w]
            out[:, 2, :, H * W - 1 - t] = x[:, :, h, w]
            t += 1
    t = 0
    for w in range(W):
        for h in range(H):
            out[:, 1, :, t] = x[:, :, h, w]
            out[:, 3, :, H * W - 1 - t] = x[:, :, h, w]
            t += 1
    return out


@pytest.mark.parametrize("H,W", [(1, 1), (1, 5), (4, 1), (3, 7), (8, 8)])
def test_cross_scan_ref_orders(H, W):
    x = torch.randn(2, 3, H, W, dtype=torch.float64)
    assert torch.equal(cross_scan_ref(x), _loop_cross_scan(x))


@pytest.mark.parametrize("H,W", [(1, 1), (3, 7), (6, 4)])
def test_cross_merge_is_adjoint_of_scan(H, W):
    # <scan(x), ys> == <x, merge(ys)> for every x, ys: merge puts each value back where
    # scan took it from.
    x = torch.randn(2, 3, H, W, dtype=torch.float64)
    ys = torch.randn(2, 4, 3, H * W, dtype=torch.float64)
    lhs = (cross_scan_ref(x) * ys).sum()
    rhs = (x.reshape(2, 3, H * W) * cross_merge_ref(ys, H, W)).sum()
    assert torch.allclose(lhs, rhs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("H,W", [(3, 7), (5, 5)])
def test_maps_match_cross_scan_ref(H, W):
    x = torch.randn(1, 2, H, W)
    maps = cross_scan_maps(H, W).long()
    xs = cross_scan_ref(x)
    for g in range(4):
        assert torch.equal(xs[:, g], x.reshape(1, 2, H * W)[..., maps[g]])


def _inputs(bt, d, H, W, n, dtype=torch.float32, seed=0, strided_bc=True):
    g = torch.Generator().manual_seed(seed)
    L = H * W

    def r(*s, scale=1.0):
        return (scale * torch.randn(*s, generator=g, dtype=torch.float64)).to(dtype)

    u = r(bt, d, H, W)
    delta = r(bt, 4 * d, L, scale=0.5)
    A = -torch.rand(4 * d, n, generator=g, dtype=torch.float64).add(0.2).to(dtype)
    if strided_bc:  # B / C as SS2D produces them: views into one (B, 4, R + 2N, L) tensor
        dbl = r(bt, 4, 3 + 2 * n, L)
        B, C = dbl[:, :, 3:3 + n], dbl[:, :, 3 + n:]
    else:
        B, C = r(bt, 4, n, L), r(bt, 4, n, L)
    return dict(u=u, delta=delta, A=A, B=B, C=C, D=r(4 * d), delta_bias=r(4 * d, scale=0.1))


def _close(y, ref, rtol):
    scale = ref.abs().max().clamp_min(1e-6)
    err = ((y.double() - ref.double()).abs().max() / scale).item()
    assert err <= rtol, f"relative error {err:.3g} > {rtol}"


@pytest.mark.parametrize("bt,d,H,W,n", [(1, 1, 1, 1, 1), (2, 3, 5, 7, 4), (1, 17, 9, 4, 16),
                                        (2, 5, 33, 3, 16), (1, 2, 16, 16, 8)])
@pytest.mark.parametrize("softplus", [True, False])
def test_fused_cpp_matches_reference(require_backend, bt, d, H, W, n, softplus):
    require_backend("cpp")
    kw = _inputs(bt, d, H, W, n)
    if not softplus:
        kw["delta"] = kw["delta"].abs()
    ref = cross_selective_scan_ref(**{k: v.double() for k, v in kw.items()},
                                   delta_softplus=softplus, H=H, W=W)
    with torch.no_grad():
        y = cross_selective_scan(**kw, delta_softplus=softplus, H=H, W=W, backend="cpp")
    assert y.shape == (bt, d, H * W) and y.dtype == torch.float32
    _close(y, ref, 2e-5)


def test_fused_cpp_float64_and_optional_args(require_backend):
    require_backend("cpp")
    kw = _inputs(2, 4, 6, 5, 4, dtype=torch.float64, strided_bc=False)
    kw["D"] = kw["delta_bias"] = None
    ref = cross_selective_scan_ref(**kw, H=6, W=5)
    y = cross_selective_scan(**kw, H=6, W=5, backend="cpp")
    _close(y, ref, 1e-12)


def test_fused_cpp_half_inputs(require_backend):
    require_backend("cpp")
    kw = _inputs(1, 8, 7, 9, 16)
    ref = cross_selective_scan_ref(**{k: v.to(torch.bfloat16).double() for k, v in kw.items()},
                                   H=7, W=9)
    y = cross_selective_scan(**{k: v.to(torch.bfloat16) for k, v in kw.items()}, H=7, W=9,
                             backend="cpp")
    assert y.dtype == torch.bfloat16
    _close(y, ref, 2e-2)  # bf16 output rounding (8 bits of mantissa)


def test_reference_is_the_grouped_scan_of_the_copies():
    kw = _inputs(1, 3, 4, 5, 4, dtype=torch.float64, strided_bc=False)
    H, W, L = 4, 5, 20
    maps = cross_scan_maps(H, W).long()
    xs = cross_scan_ref(kw["u"]).reshape(1, 12, L)
    dl = torch.cat([kw["delta"].reshape(1, 4, 3, L)[:, g][..., maps[g]] for g in range(4)], 1)
    Bs = torch.stack([kw["B"][:, g][..., maps[g]] for g in range(4)], 1)
    Cs = torch.stack([kw["C"][:, g][..., maps[g]] for g in range(4)], 1)
    ys = selective_scan_ref(xs, dl, kw["A"], Bs, Cs, kw["D"], None, kw["delta_bias"], True)
    want = cross_merge_ref(ys.reshape(1, 4, 3, L), H, W)
    _close(cross_selective_scan_ref(**kw, H=H, W=W), want, 1e-12)


@pytest.mark.parametrize("backend", ["chunked", "cpp"])
def test_gradients_through_the_materialised_path(require_backend, backend):
    if backend == "cpp":
        require_backend("cpp")
    kw = _inputs(1, 2, 3, 4, 2, dtype=torch.float64, strided_bc=False)
    names = ["u", "delta", "A", "B", "C", "D", "delta_bias"]
    args = [kw[k].clone().requires_grad_(True) for k in names]

    def f(*a):
        return cross_selective_scan(*a, True, H=3, W=4, backend=backend)

    assert torch.autograd.gradcheck(f, args, eps=1e-6, atol=1e-6, rtol=1e-5)


def test_auto_uses_the_fused_kernel_for_inference(require_backend, monkeypatch):
    require_backend("cpp")
    cs = sys.modules["effseg.ops.cross_selective_scan"]  # the name is the function

    calls = []
    monkeypatch.setattr(cs, "_materialised", lambda *a, **k: calls.append(1))
    kw = _inputs(1, 2, 3, 3, 4)
    with torch.no_grad():
        y = cross_selective_scan(**kw, H=3, W=3)
    assert calls == [] and y.shape == (1, 2, 9)


@pytest.mark.parametrize("optional", [True, False], ids=["D+delta_bias", "without"])
def test_opcheck(require_backend, optional):
    """Schema, fake kernel (shapes under FakeTensor and AOT dispatch) and autograd
    registration of the raw op, on the strided B / C views SS2D passes."""
    require_backend("cpp")
    kw = _inputs(2, 3, 3, 4, 4)
    D, bias = (kw["D"], kw["delta_bias"]) if optional else (None, None)
    args = (kw["u"].reshape(2, 3, 12), kw["delta"], kw["A"], kw["B"], kw["C"], D, bias,
            cross_scan_maps(3, 4), True, "cpp")
    torch.library.opcheck(torch.ops.effseg.cross_selective_scan.default, args)


def test_errors_name_the_argument():
    kw = _inputs(1, 2, 3, 4, 4)
    with pytest.raises(ValueError, match="delta"):
        cross_selective_scan(**{**kw, "delta": kw["delta"][:, :4]}, H=3, W=4)
    with pytest.raises(ValueError, match="B must have shape"):
        cross_selective_scan(**{**kw, "B": kw["B"][:, :2]}, H=3, W=4)
    with pytest.raises(ValueError, match="A must have shape"):
        cross_selective_scan(**{**kw, "A": kw["A"][:4]}, H=3, W=4)
    with pytest.raises(ValueError, match="u is"):
        cross_selective_scan(**kw, H=4, W=3)
    with pytest.raises(ValueError, match="H and W"):
        cross_selective_scan(**kw, H=0, W=4)
    with pytest.raises(ValueError, match="backend"):
        cross_selective_scan(**kw, H=3, W=4, backend="cuda")
    with pytest.raises(TypeError, match="u must be"):
        cross_selective_scan(**{**kw, "u": kw["u"].long()}, H=3, W=4)
    bad = kw["delta"].clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="delta"):
        cross_selective_scan(**{**kw, "delta": bad}, H=3, W=4)


def test_fused_kernel_finds_non_finite_delta(require_backend):
    """The fused C++ kernel checks delta itself (no separate pass): the last value of it."""
    require_backend("cpp")
    kw = _inputs(2, 3, 3, 4, 4)
    bad = kw["delta"].clone()
    bad[-1, -1, -1] = float("inf")
    with torch.no_grad(), pytest.raises(ValueError, match="delta contains NaN or Inf"):
        cross_selective_scan(**{**kw, "delta": bad}, H=3, W=4, backend="cpp")


def test_kernel_rejects_a_map_that_is_not_a_permutation(require_backend):
    require_backend("cpp")
    from effseg.ops.cross_selective_scan import _cross_op

    kw = _inputs(1, 2, 2, 2, 4)
    tmap = cross_scan_maps(2, 2).clone()
    tmap[1, 0] = tmap[1, 1]
    with pytest.raises(ValueError, match="permutation"):
        _cross_op(kw["u"].reshape(1, 2, 4), kw["delta"], kw["A"], kw["B"], kw["C"], kw["D"],
                  kw["delta_bias"], tmap, True)


@pytest.mark.parametrize("bt,d,H,W,n", [(1, 2, 3, 5, 4), (2, 3, 4, 4, 16)])
def test_fused_triton_matches_reference(require_backend, bt, d, H, W, n):
    require_backend("triton")
    kw = _inputs(bt, d, H, W, n)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    ref = cross_selective_scan_ref(**{k: v.double() for k, v in kw.items()}, H=H, W=W)
    with torch.no_grad():
        y = cross_selective_scan(**{k: v.to(dev) for k, v in kw.items()}, H=H, W=W,
                                 backend="triton")
    _close(y.cpu(), ref, 2e-5)


def test_maps_handed_out_are_not_the_cache():
    """Writing into a returned map must not change later maps (it used to be the cached
    tensor itself) nor the fused scan, which reads the cache."""
    first = cross_scan_maps(3, 5)
    expected = first.clone()
    first.fill_(0)
    assert torch.equal(cross_scan_maps(3, 5), expected)
    torch.manual_seed(0)
    u, delta = torch.randn(1, 2, 3, 5), torch.rand(1, 8, 15)
    A, B, C = -torch.rand(8, 3), torch.randn(1, 4, 3, 15), torch.randn(1, 4, 3, 15)
    torch.testing.assert_close(cross_selective_scan(u, delta, A, B, C, H=3, W=5, backend="auto"),
                               cross_selective_scan_ref(u, delta, A, B, C, H=3, W=5))
