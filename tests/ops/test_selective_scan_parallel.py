"""selective_scan_parallel (the ONNX lowering: all chunks at once + a log-depth scan over
chunks) against the sequential reference."""
import pytest
import torch

from effseg.ops import selective_scan
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



class _Scan(torch.nn.Module):
    """effseg's selective_scan op on per-step inputs packed along channels of x:
    u, delta, z (4 each), then B and C (3 each) when time-varying."""

    def __init__(self, varying):
        super().__init__()
        self.varying = varying
        _, _, self.A, B, C, self.D, _, self.bias, self.h0 = _inputs(2, 4, 3, 1, None)
        self.B, self.C = B, C

    def forward(self, x):
        u, delta, z = x[:, :4], x[:, 4:8].abs(), x[:, 8:12]
        B, C = (x[:, 12:15], x[:, 15:18]) if self.varying else (self.B, self.C)
        return selective_scan(u, delta, self.A, B, C, self.D, z, self.bias, True, True,
                              initial_state=self.h0)


@pytest.mark.parametrize("varying", [False, True])
def test_export_lowering_traced_with_one_chunk_runs_at_every_length(varying):
    # The dynamic-H/W export path: the op is lowered to selective_scan_parallel while
    # decomposing a program traced at L = 4 (one chunk). Guards raised there are not
    # checked against the dynamic range, so nothing may depend on the traced chunk count
    # or padding; lengths 1..max_len must all come out right.
    from effseg.export.onnx import decomposition_table

    m = _Scan(varying)
    L = torch.export.Dim("L", min=1, max=64)
    with max_scan_length(64):
        ep = torch.export.export(m, (torch.randn(2, 18, 4),), dynamic_shapes=({2: L},))
        run = ep.run_decompositions(decomposition_table()).module()
    g = torch.Generator().manual_seed(1)
    for n in (1, 3, 5, 9, 33, 63, 64):
        x = torch.randn(2, 18, n, generator=g)
        want, hw = selective_scan_ref(x[:, :4], x[:, 4:8].abs(), m.A, *((x[:, 12:15], x[:, 15:18]) if varying
                                      else (m.B, m.C)), m.D, x[:, 8:12], m.bias, True, True, initial_state=m.h0)
        got, hg = run(x)
        assert (got - want).abs().max() <= TOL * want.abs().max(), n
        assert (hg - hw).abs().max() <= TOL * hw.abs().max(), n
