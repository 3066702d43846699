"""Input builders shared by the selective-scan tests."""
from __future__ import annotations

import torch

FLAG_NAMES = ("z", "D", "delta_bias", "softplus", "initial_state")


def bc_tensor(form, bt, dm, n, length, dtype, gen):
    """form: 'const' (D, N), 'var' (B, N, L) or an int G for grouped (B, G, N, L)."""
    if form == "const":
        shape = (dm, n)
    elif form == "var":
        shape = (bt, n, length)
    else:
        shape = (bt, form, n, length)
    return torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)


def make_inputs(bt=2, dm=4, length=7, n=4, b_form="var", c_form="var", dtype=torch.float32,
                flags=FLAG_NAMES, seed=0, device="cpu"):
    """Realistic Mamba inputs: A = -exp(A_log) with A_log ~ log(1..N), dt near softplus range."""
    gen = torch.Generator().manual_seed(seed)
    f64 = dict(generator=gen, dtype=torch.float64)
    a_log = torch.log(torch.arange(1, n + 1, dtype=torch.float64)).repeat(dm, 1)
    a_log = a_log + 0.1 * torch.randn(dm, n, **f64)
    kw = dict(
        u=torch.randn(bt, dm, length, **f64),
        delta=0.5 * torch.randn(bt, dm, length, **f64) - 1.0,
        A=-torch.exp(a_log),
        B=bc_tensor(b_form, bt, dm, n, length, torch.float64, gen),
        C=bc_tensor(c_form, bt, dm, n, length, torch.float64, gen),
        D=torch.randn(dm, **f64) if "D" in flags else None,
        z=torch.randn(bt, dm, length, **f64) if "z" in flags else None,
        delta_bias=0.3 * torch.randn(dm, **f64) if "delta_bias" in flags else None,
        initial_state=torch.randn(bt, dm, n, **f64) if "initial_state" in flags else None,
    )
    if "softplus" not in flags:
        # Without softplus the step dt = delta + bias must stay positive or the scan grows.
        kw["delta"] = kw["delta"].abs() * 0.3
        if kw["delta_bias"] is not None:
            kw["delta_bias"] = kw["delta_bias"].abs() * 0.1
    out = {k: (None if v is None else v.to(device=device, dtype=dtype)) for k, v in kw.items()}
    # A, D and delta_bias are parameters: mamba keeps them fp32 under mixed precision.
    for k in ("A", "D", "delta_bias"):
        if out[k] is not None and dtype in (torch.float16, torch.bfloat16):
            out[k] = out[k].float()
    out["delta_softplus"] = "softplus" in flags
    return out


def call(fn, kw, **extra):
    kw = dict(kw)
    init = kw.pop("initial_state")
    return fn(kw["u"], kw["delta"], kw["A"], kw["B"], kw["C"], kw["D"], kw["z"], kw["delta_bias"],
              kw["delta_softplus"], True, initial_state=init, **extra)


def scale(t: torch.Tensor) -> float:
    return max(1.0, float(t.abs().max()))


def assert_close(got, want, rel, what=""):
    """Max abs error <= rel * max(1, max|want|): error relative to the output's scale."""
    got, want = got.detach().double().cpu(), want.detach().double().cpu()
    err = float((got - want).abs().max()) if got.numel() else 0.0
    tol = rel * scale(want)
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    assert err <= tol, f"{what}: max abs error {err:.3e} > {tol:.3e}"
