"""The chunked selective scan with every chunk at once: a graph whose size does not
grow with L, for ONNX export (no Loop, no Scan, no unrolled loop over chunks).

Within each chunk of T steps the local states (zero initial state) come from the masked
matrix form of selective_scan_chunked. Chunk c then maps its entering state H by
H -> a_c H + e_c, with a_c = exp(sum of dt A over the chunk) and e_c its local end state;
these affine maps compose associatively, so the states entering every chunk follow from
a log-depth inclusive scan (Hillis & Steele 1986, "Data parallel algorithms"; the
parallel linear-recurrence scan of Blelloch 1990): after step k each position holds the
composition of the 2^k maps ending there. Every factor is a product of decays <= 1 and
every sum has non-negative weights, so nothing overflows for any L. The step count is
ceil(log2(L / T)); with a symbolic L (dynamic export) it is taken from `max_len`, and
steps past the real length only compose with identity maps.
"""
from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F

from .selective_scan_ref import finish, prepare

# Larger chunks trade a T-times bigger intra-chunk matrix (memory B·D·N·L·T) for fewer
# scan steps; 4 was fastest in eager PyTorch at D=384, N=16, L=4096 (T=1: 3.4 s, 2: 2.4,
# 4: 1.2, 8: 1.6, 16: 2.6; 2-core CPU) and keeps CM-UNet at 512^2 within a few GB.
EXPORT_CHUNK = 4
# Longest sequence a dynamic-length export must cover unless told otherwise (to_onnx sets
# max_hw^2 through max_scan_length): 4096^2 pixels at stride 4.
DEFAULT_MAX_LEN = 1 << 20
_max_len = [DEFAULT_MAX_LEN]


@contextlib.contextmanager
def max_scan_length(n: int):
    """Within the block, exports with a symbolic length cover sequences up to n steps."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    _max_len.append(n)
    try:
        yield
    finally:
        _max_len.pop()


def _shift(x: torch.Tensor, k: int, fill: float) -> torch.Tensor:
    """x moved k places along the last dim, `fill` entering at the front."""
    length = x.shape[-1]
    return F.pad(x, (k, 0), value=fill)[..., :length]


def compose_prefix(a: torch.Tensor, e: torch.Tensor, steps: int):
    """Inclusive scan of the maps H -> a_c H + e_c along the last dim.

    Returns (A_c, E_c): applying maps 0..c to H gives A_c H + E_c.
    """
    k = 1
    for _ in range(steps):
        e = e + a * _shift(e, k, 0.0)
        a = a * _shift(a, k, 1.0)
        k *= 2
    return a, e


def _pad_last(x: torch.Tensor, pad) -> torch.Tensor:
    # A symbolic pad is always emitted: testing it against 0 would bake the traced
    # length's remainder mod T into the graph, wrong at lengths with another remainder.
    return x if isinstance(pad, int) and pad == 0 else F.pad(x, (0, pad))


def selective_scan_parallel(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
    *,
    initial_state: torch.Tensor | None = None,
    chunk_size: int = EXPORT_CHUNK,
    max_len: int | None = None,
):
    """Same contract as selective_scan_ref. Memory is O(B·D·N·L·chunk_size)."""
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    uc, dt, Ac, Bc, Cc, h0 = prepare(u, delta, A, B, C, delta_bias, delta_softplus, initial_state)
    length = u.shape[-1]
    T = chunk_size
    static = isinstance(length, int)
    max_len = _max_len[-1] if max_len is None else max_len
    # Padding steps have dt = 0: decay 1 and no drive, so they leave the state alone.
    pad = (-length) % T
    if not static:
        # One more all-padding chunk, so a trace never sees a single chunk: with one,
        # broadcasts decide that the chunk count is 1 and bake it into the graph.
        pad = pad + T
    n_chunks = (length + pad) // T
    steps = math.ceil(math.log2(max(1, (length + T - 1) // T if static else -(-max_len // T) + 1)))

    def chunks(x):  # (.., L) -> (.., n_chunks, T)
        x = _pad_last(x, pad)
        return x.reshape(*x.shape[:-1], n_chunks, T)

    dtc = chunks(dt)  # (B, D, nc, T)
    S = torch.cumsum(dtc.unsqueeze(2) * Ac[None, :, :, None, None], dim=-1)  # (B, D, N, nc, T)
    mask = torch.full((T, T), float("-inf"), dtype=S.dtype, device=S.device).triu(1)
    W = torch.exp(S.unsqueeze(-1) - S.unsqueeze(-2) + mask)  # [.., t, s] = exp(S_t - S_s)
    Bx = Bc.unsqueeze(-1) if Bc.shape[-1] == 1 else chunks(Bc)
    drive = (chunks(dt * uc).unsqueeze(2) * Bx).unsqueeze(-1)  # (B, D, N, nc, T, 1)
    h_local = torch.matmul(W, drive).squeeze(-1)  # (B, D, N, nc, T)
    decay_in = torch.exp(S)  # decay from the chunk start to each step
    a_pref, e_pref = compose_prefix(decay_in[..., -1], h_local[..., -1], steps)
    h_end = e_pref + a_pref * h0.unsqueeze(-1)  # state after each chunk (B, D, N, nc)
    # The state entering each chunk, from the exclusive prefix (maps shifted by one).
    # Not cat([h0, h_end[..., :-1]]): a trace with one chunk sees an empty slice there,
    # and the exported graph then silently drops it at every length.
    h_in = _shift(e_pref, 1, 0.0) + _shift(a_pref, 1, 1.0) * h0.unsqueeze(-1)
    h = h_local + decay_in * h_in.unsqueeze(-1)
    Cx = Cc.unsqueeze(-1) if Cc.shape[-1] == 1 else chunks(Cc)
    y = (h * Cx).sum(dim=2).reshape(*u.shape[:2], n_chunks * T)[..., :length]
    y = finish(y, uc, D, z, u.dtype)
    return (y, h_end[..., -1]) if return_last_state else y
