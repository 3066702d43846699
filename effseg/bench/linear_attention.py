"""Linear attention benchmark: effseg's kernel vs GeoSeg's einsum code
(effseg.ops.linear_attention_ref.einsum_taylor / einsum_softplus) vs the reference."""
from __future__ import annotations

import torch

from .._timing import machine, median_ms
from ..ops.linear_attention_ref import einsum_softplus, einsum_taylor
from .progress import progress as _progress

LA_CHANNELS = (64, 128, 256)  # C = Cv; Ck in {C/8, C}
LA_SIDES_FULL = (32, 64, 128)  # N = side^2
LA_SIDES_QUICK = (32,)
LA_KINDS = ("taylor", "softplus")


EINSUM = {"taylor": einsum_taylor, "softplus": einsum_softplus}


def la_shapes(sides=LA_SIDES_FULL, channels=LA_CHANNELS):
    """(Ck, Cv, N) for B = 1: Ck in {C/8, C}, Cv = C."""
    return [(ck, c, s * s) for c in channels for ck in (c // 8, c) for s in sides]


def _call(impl: str, kind: str, q, k, v, grad: bool):
    from ..ops import linear_attention, linear_attention_ref

    if impl == "einsum":
        def fn(a, b, c):
            return EINSUM[kind](a, b, c)
    elif impl == "ref":
        def fn(a, b, c):
            return linear_attention_ref(a, b, c, kind=kind)
    else:
        def fn(a, b, c):
            return linear_attention(a, b, c, kind=kind, backend=impl)

    if not grad:
        def fwd():
            with torch.no_grad():
                return fn(q, k, v)
        return fwd
    leaves = [x.detach().clone().requires_grad_(True) for x in (q, k, v)]
    gy = torch.randn_like(v)

    def fwd_bwd():
        for x in leaves:
            x.grad = None
        fn(*leaves).backward(gy)
    return fwd_bwd


def bench_linear_attention(device: str = "cpu", shapes=None, kinds=LA_KINDS, modes=("fwd",),
                           impls=None, repeats: int = 5, batch: int = 1, progress=True) -> dict:
    """Side-by-side medians; rows carry speedup_vs_einsum (einsum time / this time)."""
    shapes = la_shapes() if shapes is None else shapes
    if impls is None:
        impls = ("einsum", "ref", "cpp") if device == "cpu" else ("einsum", "ref", "triton")
    rows = []
    bar = _progress(len(shapes) * len(kinds) * len(modes) * len(impls), progress)
    for ck, cv, n in shapes:
        g = torch.Generator().manual_seed(ck * 7919 + cv * 31 + n)
        q, k, v = (torch.randn(batch, c, n, generator=g).to(device) for c in (ck, ck, cv))
        for kind in kinds:
            for mode in modes:
                base = None
                for impl in impls:
                    t = median_ms(_call(impl, kind, q, k, v, mode == "fwd+bwd"), device,
                                  repeats=repeats)
                    if impl == "einsum":
                        base = t["median_ms"]
                    row = dict(kind=kind, Ck=ck, Cv=cv, N=n, mode=mode, impl=impl, **t,
                               gflops=4.0 * batch * ck * cv * n / (t["median_ms"] * 1e6))
                    if base is not None:
                        row["speedup_vs_einsum"] = base / t["median_ms"]
                    rows.append(row)
                    bar(f"{kind} Ck={ck} Cv={cv} N={n} {mode} {impl}: {t['median_ms']:.3f} ms")
    return {"op": "linear_attention", "device": device, "machine": machine(device),
            "shape": {"batch": batch, "dtype": "float32",
                      "layout": "q, k (B, Ck, N), v (B, Cv, N)"},
            "method": (f"median of at least {repeats} timed calls (more for fast calls, see "
                       "effseg._timing.median_ms) after 2 warm-ups, side by side in one "
                       "process; gflops counts the two GEMMs (4 B Ck Cv N)"),
            "results": rows}



TARGET = 1.5  # effseg (C++ on CPU) at least 1.5x GeoSeg's einsum code, every shape and kind
QUICK_HELP = "N = 32^2 only, 2 repeats"


def add_arguments(p) -> None:
    p.add_argument("--grad", action="store_true", help="also time forward + backward")


def run(args) -> dict:
    return bench_linear_attention(args.device, la_shapes(LA_SIDES_QUICK if args.quick else LA_SIDES_FULL),
                                  modes=("fwd", "fwd+bwd") if args.grad else ("fwd",),
                                  repeats=2 if args.quick else args.repeats)


def targets(result: dict) -> dict:
    """The issue's CPU target: forward >= 1.5x the einsum formulation at every shape."""
    impl = "cpp" if result["device"] == "cpu" else "triton"
    rows = [r for r in result["results"]
            if r["impl"] == impl and r["mode"] == "fwd" and "speedup_vs_einsum" in r]
    if not rows:
        return {}
    per_case = {f"{r['kind']}/Ck{r['Ck']}/Cv{r['Cv']}/N{r['N']}": round(r["speedup_vs_einsum"], 3)
                for r in rows}
    missed = {k: v for k, v in per_case.items() if v < TARGET}
    return {f"{impl}_fwd_speedup_vs_einsum": per_case,
            "min_speedup": min(per_case.values()),
            "target": TARGET,
            "missed": missed,
            "speedup_met": not missed}
