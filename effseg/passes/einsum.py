"""torch.einsum as permute / reshape / bmm / sum / mul, for graphs TensorRT must parse.

TensorRT's parser rejects Einsum with a diagonal or broadcasting before 10.12, and an
Einsum layer is not quantised (INT8 Q/DQ placement needs MatMul). `einsum_as_matmul` is
the same contraction written with ops every backend and the parser take; export uses it
as the decomposition of aten.einsum (effseg.export.onnx.decomposition_table), after
effseg's linear_attention pass has had the chance to recognise a whole attention.

The contraction runs left to right over the operands: letters used by no later operand
and not in the output are summed; a pair with shared letters to contract becomes one
bmm over (batch, left-only, contracted) x (batch, contracted, right-only); a pair with
none becomes a broadcast multiply. A repeated letter in one operand (a diagonal) is a
multiply by an identity mask and a sum, not a gather.
"""
from __future__ import annotations

import torch

_SPARE = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class EinsumError(ValueError):
    pass


def parse(equation: str, ranks: list[int]) -> tuple[list[str], str]:
    """Operand subscripts and output subscripts with '...' expanded to fresh letters and
    an implicit output made explicit (letters seen once, in alphabetical order)."""
    eq = equation.replace(" ", "")
    lhs, arrow, out = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise EinsumError(f"einsum {equation!r} has {len(terms)} operand subscripts for {len(ranks)} operands")
    used = set(eq) - set(".,->")
    spare = [c for c in _SPARE if c not in used]
    n_ell = max((r - (len(t) - 3) for t, r in zip(terms, ranks) if "..." in t), default=0)
    if n_ell > len(spare):
        raise EinsumError(f"einsum {equation!r}: too many dims under '...'")
    ell = "".join(spare[:n_ell])
    full = []
    for t, r in zip(terms, ranks):
        if "..." in t:
            k = r - (len(t) - 3)
            t = t.replace("...", ell[n_ell - k:] if k else "")
        if len(t) != r:
            raise EinsumError(f"einsum {equation!r}: subscripts {t!r} for an operand of rank {r}")
        full.append(t)
    if arrow:
        out = out.replace("...", ell)
    else:
        counts = {}
        for t in full:
            for c in t:
                counts[c] = counts.get(c, 0) + 1
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    return full, out


def _diagonal(x, term: str):
    """Collapse repeated letters of `term`: keep the first occurrence."""
    while True:
        dup = next((c for i, c in enumerate(term) if c in term[:i]), None)
        if dup is None:
            return x, term
        i, j = term.index(dup), term.index(dup, term.index(dup) + 1)
        n = x.shape[i]
        shape = [1] * x.dim()
        shape[i], shape[j] = n, n
        eye = torch.eye(n, dtype=x.dtype, device=x.device).reshape(shape)
        x = (x * eye).sum(j)
        term = term[:j] + term[j + 1:]


def _sum_out(x, term: str, keep: set):
    dims = [i for i, c in enumerate(term) if c not in keep]
    if dims:
        x = x.sum(dims)
        term = "".join(c for c in term if c in keep)
    return x, term


def _permute(x, term: str, order: str):
    if term != order:
        x = x.permute([term.index(c) for c in order])
    return x


def _numel(sizes):
    n = 1
    for s in sizes:
        n = n * s
    return n


def _broadcast(a, ta: str, b, tb: str):
    """Expand a size-1 dim of one operand to the other's size for each shared letter."""
    sa, sb = list(a.shape), list(b.shape)
    for c in set(ta) & set(tb):
        i, j = ta.index(c), tb.index(c)
        if isinstance(sa[i], int) and isinstance(sb[j], int) and sa[i] != sb[j]:
            if sa[i] == 1:
                sa[i] = sb[j]
            elif sb[j] == 1:
                sb[j] = sa[i]
    return a.expand(sa), b.expand(sb)


def _pair(a, ta: str, b, tb: str, keep: set):
    """Contract two operands; letters in `keep` survive."""
    a, b = _broadcast(a, ta, b, tb)
    shared = [c for c in ta if c in tb]
    batch = [c for c in shared if c in keep]
    contract = [c for c in shared if c not in keep]
    a_only = [c for c in ta if c not in tb]
    b_only = [c for c in tb if c not in ta]
    size = {c: a.shape[ta.index(c)] for c in ta} | {c: b.shape[tb.index(c)] for c in b_only}
    if not contract:
        order = "".join(batch + a_only + b_only)
        xa = _permute(a, ta, "".join(batch + a_only)).reshape(
            [size[c] for c in batch + a_only] + [1] * len(b_only))
        xb = _permute(b, tb, "".join(batch + b_only)).reshape(
            [size[c] for c in batch] + [1] * len(a_only) + [size[c] for c in b_only])
        return xa * xb, order
    pa = _permute(a, ta, "".join(batch + a_only + contract)).reshape(
        _numel(size[c] for c in batch), _numel(size[c] for c in a_only), _numel(size[c] for c in contract))
    pb = _permute(b, tb, "".join(batch + contract + b_only)).reshape(
        _numel(size[c] for c in batch), _numel(size[c] for c in contract), _numel(size[c] for c in b_only))
    out = torch.bmm(pa, pb).reshape([size[c] for c in batch + a_only + b_only])
    return out, "".join(batch + a_only + b_only)


def einsum_as_matmul(equation: str, operands, path=None):
    """torch.einsum(equation, operands) without an einsum op (aten.einsum's signature;
    `path` is ignored: the order is left to right)."""
    operands = list(operands)
    terms, out = parse(equation, [t.dim() for t in operands])
    xs = []
    for x, t in zip(operands, terms):
        xs.append(_diagonal(x, t))
    for i, (x, t) in enumerate(xs):
        later = set(out).union(*(tt for _, tt in xs[:i] + xs[i + 1:]))
        xs[i] = _sum_out(x, t, later)
    acc, ta = xs[0]
    for i in range(1, len(xs)):
        b, tb = xs[i]
        keep = set(out).union(*(tt for _, tt in xs[i + 1:]))
        acc, ta = _pair(acc, ta, b, tb, keep)
    acc, ta = _sum_out(acc, ta, set(out))
    return _permute(acc, ta, out)
