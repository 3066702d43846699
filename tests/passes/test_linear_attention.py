"""linear_attention pass: GeoSeg's einsum Taylor (ABCNet) and softplus (MANet) attention
become effseg.linear_attention; near misses stay as written."""
from __future__ import annotations

import pytest
import torch
from geoseg_blocks import SoftplusAttention, TaylorAttention, geoseg_l2_norm
from pass_cases import export_gm, rel_err, targets

from effseg.passes import linear_attention

LA = torch.ops.effseg.linear_attention.default
CPU = torch.device("cpu")
# Relative to max |output|: the op normalises with rsqrt(sum of squares) and accumulates
# in another order than einsum.
TOL = {torch.float32: 1e-5, torch.float64: 1e-12}


def _run(m, x):
    gm = export_gm(m, x)
    rec = linear_attention.run(gm, CPU)
    gm.graph.lint()
    gm.recompile()
    return gm, rec


@pytest.mark.parametrize("cls,kind", [(TaylorAttention, "taylor"), (SoftplusAttention, "softplus")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(2, 24, 5, 7), (1, 16, 3, 1)])
def test_pattern_is_replaced_and_output_kept(cls, kind, dtype, shape):
    torch.manual_seed(0)
    m = cls(shape[1]).to(dtype).eval()
    x = torch.randn(*shape, dtype=dtype)
    gm, rec = _run(m, x)
    assert rec == {"pass": "linear_attention", "changed": 1, "taylor": int(kind == "taylor"),
                   "softplus": int(kind == "softplus")}
    ts = targets(gm)
    assert LA in ts and torch.ops.aten.einsum.default not in ts
    node = next(n for n in gm.graph.nodes if n.target is LA)
    assert node.args[3] == kind and node.args[4] == 1e-6
    with torch.no_grad():
        assert rel_err(gm(x), m(x)) < TOL[dtype]


def test_other_eps_is_carried_over():
    m = SoftplusAttention(16, eps=1e-3).eval()
    x = torch.randn(1, 16, 4, 6)
    gm, rec = _run(m, x)
    assert rec["changed"] == 1
    assert next(n for n in gm.graph.nodes if n.target is LA).args[4] == 1e-3
    with torch.no_grad():
        assert rel_err(gm(x), m(x)) < 1e-5


def test_dynamic_shapes_still_match():
    m = TaylorAttention(16).eval()
    x = torch.randn(2, 16, 6, 5)
    dims = {"x": {0: torch.export.Dim("b", max=64), 2: torch.export.Dim("h", min=2, max=512),
                  3: torch.export.Dim("w", min=2, max=512)}}
    gm = torch.export.export(m, (x,), dynamic_shapes=dims).module()
    assert linear_attention.run(gm, CPU)["changed"] == 1
    gm.recompile()
    for shape in [(2, 16, 6, 5), (3, 16, 9, 4)]:
        x = torch.randn(*shape)
        with torch.no_grad():
            assert rel_err(gm(x), m(x)) < 1e-5


# ---- near misses: one detail differs from the formula -------------------------------

class _KNotNormalised(TaylorAttention):
    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(x)
        q = geoseg_l2_norm(q).permute(-3, -1, -2)
        ts = 1 / (w * h + torch.einsum("bnc, bc->bn", q, torch.sum(k, dim=-1) + self.eps))
        vs = torch.einsum("bcn->bc", v).unsqueeze(-1).expand(-1, c, w * h)
        ms = vs + torch.einsum("bnm, bmc->bcn", q, torch.einsum("bmn, bcn->bmc", k, v))
        return torch.einsum("bcn, bn->bcn", ms, ts).view(b, c, h, w)


class _WrongN(TaylorAttention):
    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(x)
        q = geoseg_l2_norm(q).permute(-3, -1, -2)
        k = geoseg_l2_norm(k)
        ts = 1 / (w * h + 1 + torch.einsum("bnc, bc->bn", q, torch.sum(k, dim=-1) + self.eps))
        vs = torch.einsum("bcn->bc", v).unsqueeze(-1).expand(-1, c, w * h)
        ms = vs + torch.einsum("bnm, bmc->bcn", q, torch.einsum("bmn, bcn->bmc", k, v))
        return torch.einsum("bcn, bn->bcn", ms, ts).view(b, c, h, w)


class _SummaryEscapes(SoftplusAttention):
    """The K V^T summary is also returned: it must survive, so no rewrite."""

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(x)
        q = torch.nn.functional.softplus(q).permute(-3, -1, -2)
        k = torch.nn.functional.softplus(k)
        kv = torch.einsum("bmn, bcn->bmc", k, v)
        norm = 1 / torch.einsum("bnc, bc->bn", q, torch.sum(k, dim=-1) + self.eps)
        return torch.einsum("bnm, bmc, bn->bcn", q, kv, norm).view(b, c, h, w), kv


class _SoftplusBeta(SoftplusAttention):
    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(x)
        q = torch.nn.functional.softplus(q, beta=2.0).permute(-3, -1, -2)
        k = torch.nn.functional.softplus(k, beta=2.0)
        kv = torch.einsum("bmn, bcn->bmc", k, v)
        norm = 1 / torch.einsum("bnc, bc->bn", q, torch.sum(k, dim=-1) + self.eps)
        return torch.einsum("bnm, bmc, bn->bcn", q, kv, norm).view(b, c, h, w)


class _NoKeySum(SoftplusAttention):
    """Normaliser over q . k_n of one position instead of sum_n k_n."""

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(x)
        q = torch.nn.functional.softplus(q).permute(-3, -1, -2)
        k = torch.nn.functional.softplus(k)
        kv = torch.einsum("bmn, bcn->bmc", k, v)
        norm = 1 / torch.einsum("bnc, bc->bn", q, torch.amax(k, dim=-1) + self.eps)
        return torch.einsum("bnm, bmc, bn->bcn", q, kv, norm).view(b, c, h, w)


@pytest.mark.parametrize("cls", [_KNotNormalised, _WrongN, _SummaryEscapes, _SoftplusBeta,
                                 _NoKeySum])
def test_near_miss_is_left_alone(cls):
    torch.manual_seed(0)
    m = cls(16).eval()
    x = torch.randn(1, 16, 3, 5)
    gm = export_gm(m, x)
    before = targets(gm)
    assert linear_attention.run(gm, CPU)["changed"] == 0
    assert targets(gm) == before


def test_zero_eps_is_left_alone():
    # effseg's op needs eps > 0; GeoSeg's formula with eps = 0 is not rewritten.
    m = SoftplusAttention(16, eps=0.0).eval()
    gm = export_gm(m, torch.randn(1, 16, 3, 3))
    assert linear_attention.run(gm, CPU)["changed"] == 0
