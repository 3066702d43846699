"""selective_scan_parallel (the ONNX lowering: all chunks at once + a log-depth scan over
chunks) against the sequential reference."""
import pytest
import torch

from effseg.ops.selective_scan_parallel import (
    compose_prefix,
    max_scan_length,
    selective_scan_parallel,
)
from effseg.ops.selective_scan_ref import selective_scan_ref

TOL = 2e-5  # fp32, relative to the output scale


def _inputs(b, d, n, L, groups, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)
    u, delta, z = r(b, d, L), torch.rand(b, d, L, generator=g) * 2, r(b, d, L)
    A = -torch.rand(d, n, generator=g) * 8
    if groups is None:
        B, C = r(d, n), r(d, n)
    elif groups == 0:
        B, C = r(b, n, L), r(b, n, L)
    else:
        B, C = r(b, groups, n, L), r(b, groups, n, L)
    return u, delta, A, B, C, r(d), z, r(d) * 0.1, r(b, d, n)


@pytest.mark.parametrize("L", [1, 7, 63, 1000])
@pytest.mark.parametrize("chunk", [1, 4, 16])
@pytest.mark.parametrize("groups", [None, 0, 2])
def test_matches_reference(L, chunk, groups):
    u, delta, A, B, C, D, z, bias, h0 = _inputs(2, 4, 3, L, groups)
    want, hw = selective_scan_ref(u, delta, A, B, C, D, z, bias, True, True, initial_state=h0)
    got, hg = selective_scan_parallel(u, delta, A, B, C, D, z, bias, True, True, initial_state=h0,
                                      chunk_size=chunk)
    assert (got - want).abs().max() <= TOL * want.abs().max()
    assert (hg - hw).abs().max() <= TOL * hw.abs().max()


def test_no_options_and_fp64():
    u, delta, A, B, C, *_ = _inputs(1, 3, 2, 37, 0)
    u, delta, A, B, C = (t.double() for t in (u, delta, A, B, C))
    want = selective_scan_ref(u, delta, A, B, C)
    got = selective_scan_parallel(u, delta, A, B, C, chunk_size=5)
    assert got.dtype == torch.float64
    assert (got - want).abs().max() <= 1e-12 * want.abs().max()


def test_compose_prefix_is_the_sequential_affine_scan():
    a, e = torch.rand(3, 13), torch.randn(3, 13)
    A_, E_ = compose_prefix(a, e, steps=4)  # 2^4 >= 13
    h, hs = torch.zeros(3), []
    for t in range(13):
        h = a[:, t] * h + e[:, t]
        hs.append(h)
    torch.testing.assert_close(E_, torch.stack(hs, -1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(A_, torch.cumprod(a, -1), rtol=1e-5, atol=1e-7)
    _, short = compose_prefix(a, e, steps=2)  # too few steps: the tail is wrong, as it must be
    assert not torch.allclose(short, torch.stack(hs, -1))


def test_bad_arguments():
    u, delta, A, B, C, *_ = _inputs(1, 2, 2, 5, 0)
    with pytest.raises(ValueError, match="chunk_size"):
        selective_scan_parallel(u, delta, A, B, C, chunk_size=0)
    with pytest.raises(ValueError, match="n must be"), max_scan_length(0):
        pass
