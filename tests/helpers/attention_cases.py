"""Input builders and comparisons shared by the linear-attention tests."""
from __future__ import annotations

import torch

KINDS = ("taylor", "softplus")
# (B, Ck, Cv, N): odd sizes, N not a multiple of any block width (8/16 lanes, 64..256
# positions per block), C in {1, 3, 17, 64}, several blocks per batch and B > 1 so that
# threads split batches unevenly.
SHAPES = [(1, 1, 1, 1), (1, 3, 1, 5), (2, 1, 3, 17), (1, 17, 3, 33), (2, 3, 17, 100),
          (1, 64, 17, 257), (3, 17, 64, 531), (1, 64, 64, 1000), (2, 8, 64, 4099)]
TRITON_SHAPES = [(1, 1, 1, 1), (2, 3, 17, 37), (1, 17, 3, 70), (1, 64, 20, 33)]


def make_qkv(B, Ck, Cv, N, dtype=torch.float32, seed=0, device="cpu", requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    out = []
    for c in (Ck, Ck, Cv):
        x = torch.randn(B, c, N, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)
        out.append(x.requires_grad_(requires_grad))
    return out


def assert_close(got, want, rel, what=""):
    """Max abs error <= rel * max(1e-3, max|want|): error relative to the output's scale
    (the floor keeps exact zeros, e.g. the gradient of a 1-channel l2 norm, comparable)."""
    got, want = got.detach().double().cpu(), want.detach().double().cpu()
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    assert bool(torch.isfinite(got).all()), f"{what}: non-finite values"
    err = float((got - want).abs().max()) if got.numel() else 0.0
    tol = rel * max(1e-3, float(want.abs().max()))
    assert err <= tol, f"{what}: max abs error {err:.3e} > {tol:.3e}"


def well_posed(q, k, kind):
    """Taylor attention divides by N + q^.(sum k^ + eps), which can vanish when every k^
    points against q^ (possible with one channel and few positions): such inputs are
    ill-conditioned for any implementation, so the tests avoid them."""
    if kind != "taylor":
        return True
    qn = q.double() / q.double().norm(dim=1, keepdim=True)
    kn = k.double() / k.double().norm(dim=1, keepdim=True)
    den = q.shape[-1] + (qn * kn.sum(-1, keepdim=True)).sum(1)
    return bool((den > 0.05 * q.shape[-1]).all())
