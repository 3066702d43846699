"""Recognise GeoSeg's einsum linear attention and replace it with effseg's linear_attention.

Two exact op sequences, as torch.export writes GeoSeg's code (geoseg/models/ABCNet.py
`Attention`, shared verbatim by A2FPN.py and BANet.py; MANet.py `PAM_Module`), with
Q, K, V (B, C, N) views of the 1x1-conv projections:

taylor (Taylor attention, ABCNet):
    Qn = einsum("bcn,bn->bcn", Q, 1 / norm(Q, 2, dim=-2)); Kn likewise; Qp = Qn.permute(0, 2, 1)
    t  = 1 / (N + einsum("bnc,bc->bn", Qp, sum(Kn, -1) + eps))
    out = einsum("bcn,bn->bcn", einsum("bcn->bc", V)[..., None].expand(B, C, N)
                 + einsum("bnm,bmc->bcn", Qp, einsum("bmn,bcn->bmc", Kn, V)), t)
softplus (kernel attention, MANet):
    Qp = softplus(Q).permute(0, 2, 1); Ks = softplus(K)
    out = einsum("bnm,bmc,bn->bcn", Qp, einsum("bmn,bcn->bmc", Ks, V),
                 1 / einsum("bnc,bc->bn", Qp, sum(Ks, -1) + eps))

which is linear_attention(Q, K, V, kind=..., eps=eps) by its definition
(effseg/ops/linear_attention_ref.py). Every node of the match must be used only inside
it, every constant must be what the formula needs (N, eps > 0, default softplus); any
difference leaves the graph as it was. One deliberate difference: GeoSeg returns NaN
for an all-zero Q/K column (0 / 0), effseg's op returns 0 there.
"""
from __future__ import annotations

import operator

import torch
from torch import fx

from ._graph import aten, erase_dead, is_call, val


class _NoMatch(Exception):
    pass


def _need(cond: bool) -> None:
    if not cond:
        raise _NoMatch


def _tensor(x) -> bool:
    return isinstance(x, fx.Node) and isinstance(val(x), torch.Tensor)


def _scalar(x):
    """A Python number, or the SymInt a size node stands for under dynamic shapes."""
    if isinstance(x, fx.Node):
        v = val(x)
        _need(isinstance(v, torch.SymInt))
        return v
    return x


class _Matcher:
    def __init__(self):
        self.nodes: set[fx.Node] = set()

    def call(self, node, *targets) -> fx.Node:
        _need(is_call(node, *targets))
        self.nodes.add(node)
        return node

    def einsum(self, node, equation: str, n_operands: int) -> list:
        self.call(node, aten.einsum.default)
        eq, ops = node.args[0], node.args[1]
        _need(isinstance(eq, str) and eq.replace(" ", "") == equation)
        _need(len(ops) == n_operands and not node.kwargs and len(node.args) == 2)
        return list(ops)

    def reciprocal(self, node) -> fx.Node:
        """x of `1 / x` as export writes it: mul(reciprocal(x), 1), reciprocal(x) or div(1, x)."""
        if is_call(node, aten.mul.Tensor) and node.args[1] == 1:
            self.nodes.add(node)
            node = node.args[0]
        if is_call(node, aten.div.Tensor) and node.args[0] == 1:
            self.nodes.add(node)
            return node.args[1]
        return self.call(node, aten.reciprocal.default).args[0]

    def add_const(self, node) -> tuple[fx.Node, object]:
        self.call(node, aten.add.Tensor)
        _need(len(node.args) == 2 and not node.kwargs)
        a, b = node.args
        if _tensor(a) and not _tensor(b):
            return a, _scalar(b)
        _need(_tensor(b) and not _tensor(a))
        return b, _scalar(a)

    def permute_cn(self, node) -> fx.Node:
        self.call(node, aten.permute.default)
        _need(list(node.args[1]) in ([-3, -1, -2], [0, 2, 1]))
        return node.args[0]

    def ksum(self, node) -> tuple[fx.Node, float]:
        """(K, eps) of sum(K, dim=-1) + eps."""
        s, eps = self.add_const(node)
        self.call(s, aten.sum.dim_IntList)
        _need(list(s.args[1]) in ([-1], [2]) and len(s.args) == 2 and not s.kwargs)
        _need(isinstance(eps, float) and eps > 0)
        return s.args[0], eps

    def l2_normalised(self, node) -> fx.Node:
        x, inv = self.einsum(node, "bcn,bn->bcn", 2)
        nrm = self.call(self.reciprocal(inv), aten.linalg_vector_norm.default)
        _need(nrm.args[0] is x and nrm.args[1] == 2 and list(nrm.args[2]) in ([-2], [1])
              and len(nrm.args) == 3 and not nrm.kwargs)
        return x

    def softplus(self, node) -> fx.Node:
        self.call(node, aten.softplus.default)
        _need(tuple(node.args[1:]) in ((), (1,), (1, 20)) and not node.kwargs)
        return node.args[0]


def _same_size(a, b) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001  (an unresolvable symbolic comparison: no match)
        return False


def _taylor(root: fx.Node):
    m = _Matcher()
    total, t = m.einsum(root, "bcn,bn->bcn", 2)
    a, b = m.call(total, aten.add.Tensor).args[:2]
    _need(len(total.args) == 2 and not total.kwargs)
    expand, qkv = (a, b) if is_call(a, aten.expand.default) else (b, a)
    m.call(expand, aten.expand.default)
    unsq = m.call(expand.args[0], aten.unsqueeze.default)
    _need(unsq.args[1] in (-1, 2))
    (v,) = m.einsum(unsq.args[0], "bcn->bc", 1)
    qp, kv = m.einsum(qkv, "bnm,bmc->bcn", 2)
    kn, v2 = m.einsum(kv, "bmn,bcn->bmc", 2)
    _need(v2 is v)
    den, n_const = m.add_const(m.reciprocal(t))
    qp2, ks = m.einsum(den, "bnc,bc->bn", 2)
    _need(qp2 is qp)
    kn2, eps = m.ksum(ks)
    _need(kn2 is kn)
    m.nodes.add(qp)
    q = m.l2_normalised(m.permute_cn(qp))
    k = m.l2_normalised(kn)
    vv = val(v)
    _need(isinstance(vv, torch.Tensor) and val(expand).dim() == vv.dim()
          and all(_same_size(a, b) for a, b in zip(val(expand).shape, vv.shape)))
    _need(not isinstance(n_const, bool) and _same_size(n_const, vv.shape[-1]))
    return m, q, k, v, "taylor", eps


def _softplus(root: fx.Node):
    m = _Matcher()
    qp, kv, inv = m.einsum(root, "bnm,bmc,bn->bcn", 3)
    ks, v = m.einsum(kv, "bmn,bcn->bmc", 2)
    qp2, ksum = m.einsum(m.reciprocal(inv), "bnc,bc->bn", 2)
    _need(qp2 is qp)
    ks2, eps = m.ksum(ksum)
    _need(ks2 is ks)
    m.nodes.add(qp)
    q = m.softplus(m.permute_cn(qp))
    k = m.softplus(ks)
    return m, q, k, v, "softplus", eps


def _check_inputs(q, k, v) -> None:
    qv, kv, vv = val(q), val(k), val(v)
    _need(all(isinstance(t, torch.Tensor) and t.dim() == 3 for t in (qv, kv, vv)))
    _need(qv.dtype == kv.dtype == vv.dtype and qv.dtype.is_floating_point)
    _need(qv.dim() == kv.dim() and all(_same_size(a, b) for a, b in zip(qv.shape, kv.shape)))
    _need(_same_size(vv.shape[0], qv.shape[0]) and _same_size(vv.shape[2], qv.shape[2]))


def _try(root: fx.Node):
    for matcher in (_taylor, _softplus):
        try:
            m, q, k, v, kind, eps = matcher(root)
            _check_inputs(q, k, v)
            # Intermediates read from outside the match would lose their producer.
            for n in m.nodes - {root}:
                _need(all(u in m.nodes for u in n.users))
            return m, q, k, v, kind, eps
        except (_NoMatch, AttributeError, IndexError, TypeError, ValueError):
            continue
    return None


def _fake_result(q, k, v, kind, eps):
    # Later consumers (re-export, inductor) read the example values of every node.
    from torch._guards import detect_fake_mode

    vals = [val(q), val(k), val(v)]
    mode = detect_fake_mode(vals)
    if mode is None:
        return None
    with mode:
        return torch.ops.effseg.linear_attention.default(*vals, kind, float(eps), "auto")


def run(gm: fx.GraphModule, device) -> dict:
    counts = {"taylor": 0, "softplus": 0}
    for node in list(gm.graph.nodes):
        if getattr(node, "_erased", False) or not is_call(node, aten.einsum.default):
            continue
        hit = _try(node)
        if hit is None:
            continue
        m, q, k, v, kind, eps = hit
        with gm.graph.inserting_before(node):
            op = gm.graph.call_function(torch.ops.effseg.linear_attention.default,
                                        (q, k, v, kind, float(eps), "auto"))
            out = gm.graph.call_function(operator.getitem, (op, 0))
        out.meta["val"] = val(node)
        op.meta["val"] = _fake_result(q, k, v, kind, eps)
        node.replace_all_uses_with(out)
        erase_dead(gm, m.nodes)
        counts[kind] += 1
    return {"pass": "linear_attention", "changed": sum(counts.values()), **counts}
