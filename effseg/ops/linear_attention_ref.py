"""The definition of effseg's linear attention in plain PyTorch (matmul and sum only).

Non-causal global linear attention as the GeoSeg family computes it, on their layout:
q, k (B, Ck, N), v (B, Cv, N) -> (B, Cv, N), N = H*W, one summary per batch.

- kind="taylor" (ABCNet / A2-FPN / BANet "Attention", a first-order Taylor expansion of
  softmax attention): q^, k^ = q, k l2-normalised over channels;
  out_n = (sum_j v_j + (k^ v^T)^T q^_n) / (N + q^_n . (sum_j k^_j + eps)).
- kind="softplus" (MANet "PAM", kernel attention with softplus features):
  out_n = (k v^T)^T q_n / (q_n . (sum_j k_j + eps)) with q, k <- softplus(q), softplus(k).

Zero columns: GeoSeg divides by the column norm and gets NaN for a column of zeros.
Here a column whose squared norm is 0 (also by underflow) maps to the zero vector and
gets zero gradient; every other column is normalised exactly as GeoSeg does.

Cost is O(N Ck Cv): the (Ck x Cv) summary k^ v^T is formed once, never the N x N map.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

KINDS = ("taylor", "softplus")


def compute_dtype(x: Tensor) -> torch.dtype:
    """float64 stays float64; half and bfloat16 are computed in float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def feature_map(x: Tensor, kind: str) -> Tensor:
    """phi over the channel dimension (dim 1) of a (B, C, N) tensor."""
    if kind == "taylor":
        ss = (x * x).sum(1, keepdim=True)
        nonzero = ss > 0
        # rsqrt of a placeholder 1 where the column is zero, so that neither the value
        # nor the gradient sees 1/0.
        return x * torch.where(nonzero, ss, torch.ones_like(ss)).rsqrt() * nonzero
    if kind == "softplus":
        return F.softplus(x)
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def linear_attention_ref(q: Tensor, k: Tensor, v: Tensor, *, kind: str, eps: float = 1e-6) -> Tensor:
    """(B, Cv, N) in q's dtype; computed in float32 (float64 for float64 inputs)."""
    cd = compute_dtype(q)
    fq, fk, vc = feature_map(q.to(cd), kind), feature_map(k.to(cd), kind), v.to(cd)
    kv = torch.matmul(fk, vc.transpose(1, 2))  # (B, Ck, Cv)
    ksum = fk.sum(-1, keepdim=True) + eps  # (B, Ck, 1)
    num = torch.matmul(kv.transpose(1, 2), fq)  # (B, Cv, N)
    den = (fq * ksum).sum(1, keepdim=True)  # (B, 1, N)
    if kind == "taylor":
        num = num + vc.sum(-1, keepdim=True)
        den = den + q.shape[-1]
    return (num / den).to(q.dtype)


def summary_ref(k: Tensor, v: Tensor, kind: str) -> Tensor:
    """The kernels' saved summary, (B, Cv + 1, Ck + 1) in the compute dtype:
    [[ (phi(k) v^T)^T, sum_n v ], [ sum_n phi(k), N ]]."""
    cd = compute_dtype(k)
    fk, vc = feature_map(k.to(cd), kind), v.to(cd)
    bt, _, n = fk.shape
    top = torch.cat([torch.matmul(vc, fk.transpose(1, 2)), vc.sum(-1, keepdim=True)], 2)
    bottom = torch.cat([fk.sum(-1), fk.new_full((bt, 1), float(n))], 1).unsqueeze(1)
    return torch.cat([top, bottom], 1)


# GeoSeg's own computation, from Q, K, V (after the 1x1 convs) on, written as GeoSeg
# writes it (torch.einsum, torch.norm, NaN for a zero column): the peer that the tests
# and the benchmark hold the kernels and the attention pass against. The result is made
# contiguous, as the modules' `.contiguous()` / `gamma *` step does.
def _l2_norm(x):
    return torch.einsum("bcn, bn->bcn", x, 1 / torch.norm(x, p=2, dim=-2))


def einsum_taylor(q, k, v, eps=1e-6):
    """GeoSeg ABCNet / A2-FPN / BANet `Attention.forward`, from Q, K, V (B, C, N) on."""
    _, c, n = v.shape
    Q = _l2_norm(q).permute(-3, -1, -2)
    K = _l2_norm(k)
    tailor_sum = 1 / (n + torch.einsum("bnc, bc->bn", Q, torch.sum(K, dim=-1) + eps))
    value_sum = torch.einsum("bcn->bc", v).unsqueeze(-1).expand(-1, c, n)
    matrix = torch.einsum("bmn, bcn->bmc", K, v)
    matrix_sum = value_sum + torch.einsum("bnm, bmc->bcn", Q, matrix)
    return torch.einsum("bcn, bn->bcn", matrix_sum, tailor_sum).contiguous()


def einsum_softplus(q, k, v, eps=1e-6):
    """GeoSeg MANet `PAM_Module.forward`, from Q, K, V (B, C, N) on."""
    Q = F.softplus(q).permute(-3, -1, -2)
    K = F.softplus(k)
    KV = torch.einsum("bmn, bcn->bmc", K, v)
    norm = 1 / torch.einsum("bnc, bc->bn", Q, torch.sum(K, dim=-1) + eps)
    return torch.einsum("bnm, bmc, bn->bcn", Q, KV, norm).contiguous()
