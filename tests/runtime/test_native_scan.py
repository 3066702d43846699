"""effseg.runtime.native_scan: the C++ cross selective scan on numpy buffers, against the
torch reference (odd sizes, batch > 1), and its argument errors."""
import numpy as np
import pytest
import torch

from effseg.ops.cross_selective_scan import cross_scan_maps, cross_selective_scan_ref
from effseg.runtime import native_scan

pytestmark = pytest.mark.skipif(not native_scan.available(),
                                reason=f"the native scan needs effseg._C: {native_scan.reason()}")


def _case(b=2, d=3, n=5, H=5, W=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    L = H * W
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    return dict(u=r(b, d, L), delta=r(b, 4 * d, L) * 0.5, A=-torch.rand(4 * d, n, generator=g) - 0.1,
                B=r(b, 4, n, L), C=r(b, 4, n, L), D=r(4 * d), delta_bias=r(4 * d) * 0.1), H, W


@pytest.mark.parametrize(("b", "d", "n", "H", "W"), [(2, 3, 5, 5, 7), (1, 4, 16, 8, 8), (3, 1, 1, 1, 9)])
def test_matches_the_torch_reference_at_odd_sizes(b, d, n, H, W):
    t, H, W = _case(b, d, n, H, W)
    want = cross_selective_scan_ref(**t, delta_softplus=True, H=H, W=W).numpy()
    got = native_scan.cross_selective_scan(*(t[k].numpy() for k in ("u", "delta", "A", "B", "C", "D", "delta_bias")),
                                           cross_scan_maps(H, W).numpy(), True)
    assert got.shape == (b, d, H * W) and got.dtype == np.float32
    # fp32 over at most 72 steps; the reference runs the same recurrence step by step.
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))


def test_softplus_flag_is_passed_through():
    t, H, W = _case()
    args = [t[k].numpy() for k in ("u", "delta", "A", "B", "C", "D", "delta_bias")] + [cross_scan_maps(H, W).numpy()]
    want = cross_selective_scan_ref(**t, delta_softplus=False, H=H, W=W).numpy()
    np.testing.assert_allclose(native_scan.cross_selective_scan(*args, False), want, rtol=1e-4, atol=1e-4)


def test_bad_arguments_name_what_was_expected():
    t, H, W = _case()
    a = {k: v.numpy() for k, v in t.items()}
    tm = cross_scan_maps(H, W).numpy()
    call = lambda **kw: native_scan.cross_selective_scan(  # noqa: E731
        *(kw.get(k, a[k]) for k in ("u", "delta", "A", "B", "C", "D", "delta_bias")), kw.get("tmap", tm), True)
    with pytest.raises(ValueError, match="delta must have shape"):
        call(delta=a["delta"][:, :-1])
    with pytest.raises(TypeError, match="u must be float32"):
        call(u=a["u"].astype(np.float64))
    with pytest.raises(ValueError, match="tmap must be an integer array of shape"):
        call(tmap=tm[:, :-1])
    with pytest.raises(ValueError, match="u must have 3 dimensions"):
        call(u=a["u"][0])
    with pytest.raises(ValueError, match="NaN or Inf"):
        bad = a["delta"].copy()
        bad[0, 0, 0] = np.nan
        call(delta=bad)


def test_unavailable_scan_says_why(monkeypatch):
    monkeypatch.setattr(native_scan, "_REASON", "effseg._C does not import (test)")
    assert not native_scan.available() and "does not import" in native_scan.reason()
    with pytest.raises(RuntimeError, match="native scan is unavailable: effseg._C does not import"):
        native_scan.cross_selective_scan(*[np.zeros(1, np.float32)] * 8, True)
