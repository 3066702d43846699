"""Valid calls of every effseg._C entry point that takes buffers, at small sizes: each
case is (entry point name, argument list, indices of the buffer arguments). The
security fuzz tests break one buffer of a valid call and expect a ValueError."""
from __future__ import annotations

import torch

from effseg._native import buf, strided_buf


def _t(*shape, dtype=torch.float32):
    return torch.randn(shape).to(dtype)


def _case(name, args):
    keep = [a for a in args if isinstance(a, torch.Tensor)]  # alive as long as the case
    call = [buf(a) if isinstance(a, torch.Tensor) else a for a in args]
    return name, call, [i for i, a in enumerate(args) if isinstance(a, torch.Tensor)], keep


def linear_attention_cases():
    B, Ck, Cv, N = 2, 3, 4, 9
    q, k, v, out, stats = _t(B, Ck, N), _t(B, Ck, N), _t(B, Cv, N), _t(B, Cv, N), _t(B, Cv + 1, Ck + 1)
    stats[:, -1, -1] = N  # as the forward leaves it (the backward checks)
    head = ["float32", B, Ck, Cv, N, "taylor", 1e-6]
    return [_case("linear_attention_fwd", head + [q, k, v, out, stats]),
            _case("linear_attention_bwd", head + [q, k, v, out, stats, _t(B, Cv, N),
                                                  _t(B, Ck, N), _t(B, Ck, N), _t(B, Cv, N)])]


def depthwise_cases():
    B, C, H, W, k = 1, 5, 6, 7, 3
    return [_case("depthwise_conv2d_fwd", ["float32", B, C, H, W, k, k, 1, 1, 1, 1, 1, 1, H, W,
                                           _t(B, C, H, W), _t(C, k, k), _t(C), 0, _t(B, C, H, W)])]


def distance_cases():
    return [_case("distance_transform", [2, 5, 6, torch.ones(2, 5, 6, dtype=torch.uint8),
                                         _t(2, 5, 6), 1.0, 1.0])]


def winograd_cases():
    N, C, K, H, W = 1, 3, 4, 9, 9  # padding 1: Ho = Wo = 9, 3 x 3 tiles
    P = N * 3 * 3
    return [_case("winograd_input_transform", ["float32", _t(N, C, H, W), N, C, H, W, 1, 1, 3, 3,
                                               0, P, _t(36, C, P)]),
            _case("winograd_output_transform", ["float32", _t(36, K, P), K, 0, P, 3, 3, _t(K),
                                                False, _t(N, K, H, W), N, H, W])]


def selective_scan_cases():
    Bt, Dm, L, N, G = 2, 4, 6, 3, 1
    bs = (L * N, 0, 1, N)  # B / C as (Bt, L, N) contiguous
    io = [_t(Bt, Dm, L), _t(Bt, Dm, L).abs(), -_t(Dm, N).abs(), _t(Bt, L, N), bs, _t(Bt, L, N), bs,
          _t(Dm), _t(Bt, Dm, L), _t(Dm), _t(Bt, Dm, N), True]
    fwd = ["float32", Bt, Dm, L, N, G, *io, _t(Bt, Dm, L), _t(Bt, Dm, N)]
    bwd = ["float32", Bt, Dm, L, N, G, *io, _t(Bt, Dm, L), _t(Bt, Dm, N), _t(Bt, Dm, L),
           _t(Bt, Dm, L), _t(Bt, Dm, N), torch.zeros(Bt, L, N), bs, torch.zeros(Bt, L, N), bs,
           _t(Bt, Dm), _t(Bt, Dm, L), _t(Bt, Dm), _t(Bt, Dm, N)]
    G, Du, L = 4, 2, 6  # cross scan: u is one (Bt, Du, L) map, B / C (Bt, G, N, L)
    Bc = _t(Bt, G, N, L)
    cs = tuple(Bc.stride())
    cross = ["float32", Bt, G * Du, L, N, G, _t(Bt, Du, L), _t(Bt, G * Du, L).abs(),
             -_t(G * Du, N).abs(), Bc, cs, Bc.clone(), cs, _t(G * Du), _t(G * Du), True,
             torch.stack([torch.randperm(L) for _ in range(G)]).to(torch.int32), _t(Bt, Du, L)]
    assert strided_buf(Bc) == buf(Bc)
    return [_case("selective_scan_fwd", fwd), _case("selective_scan_bwd", bwd),
            _case("cross_selective_scan_fwd", cross)]


def all_cases():
    return (linear_attention_cases() + depthwise_cases() + distance_cases() + winograd_cases()
            + selective_scan_cases())
