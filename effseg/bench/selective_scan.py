"""Selective scan: ref vs C++ vs chunked (CPU) or Triton vs chunked (GPU), side by side,
at B1 D512 N16 (Mamba-like inputs), forward and forward + backward."""
from __future__ import annotations

from typing import Optional

import torch

from .._timing import dram_GBps, machine, median_ms, stream_ms
from .progress import progress as _progress

SCAN_SHAPE = dict(batch=1, dim=512, dstate=16)
SCAN_LENGTHS_FULL = (1024, 4096, 16384)
SCAN_LENGTHS_QUICK = (1024,)


def scan_inputs(length: int, device: str, batch=1, dim=512, dstate=16, seed=0):
    """Mamba-like inputs: time-varying B/C (one group), D, z, dt bias, softplus."""
    g = torch.Generator(device="cpu").manual_seed(seed)

    def r(*shape, s=1.0):
        return (s * torch.randn(*shape, generator=g)).to(device)

    a = -torch.log(torch.arange(1, dstate + 1, dtype=torch.float32)).repeat(dim, 1).exp()
    return dict(u=r(batch, dim, length), delta=r(batch, dim, length, s=0.5), A=a.to(device),
                B=r(batch, dstate, length), C=r(batch, dstate, length), D=r(dim),
                z=r(batch, dim, length), delta_bias=r(dim, s=0.1))


def scan_bytes(kw: dict) -> int:
    """Bytes read once (every input) plus written once (the output)."""
    return sum(t.numel() * t.element_size() for t in kw.values()) + kw["u"].numel() * 4


def _scan_call(backend: str, kw: dict, grad: bool):
    from ..ops import selective_scan

    def fwd():
        with torch.no_grad():
            return selective_scan(**kw, delta_softplus=True, backend=backend)

    if not grad:
        return fwd
    leaves = {k: v.detach().clone().requires_grad_(k in ("u", "delta", "A", "B", "C", "D", "z"))
              for k, v in kw.items()}
    gy = torch.randn_like(kw["u"])

    def fwd_bwd():
        y = selective_scan(**leaves, delta_softplus=True, backend=backend)
        y.backward(gy)

    return fwd_bwd


def bench_selective_scan(device: str = "cpu", lengths=SCAN_LENGTHS_QUICK, modes=("fwd",),
                         backends: Optional[tuple] = None, repeats: int = 5, progress=True) -> dict:
    if backends is None:
        backends = ("ref", "cpp", "chunked") if device == "cpu" else ("triton", "chunked")
    rows, streams = [], {}
    dram = dram_GBps(device)
    cases = [(L, m, b) for L in lengths for m in modes for b in backends]
    bar = _progress(len(cases), progress)
    for length in lengths:
        kw = scan_inputs(length, device, **SCAN_SHAPE)
        nbytes = scan_bytes(kw)
        streams[length] = stream_ms(nbytes, device)
        for mode in modes:
            base = None
            for backend in backends:
                t = median_ms(_scan_call(backend, kw, mode == "fwd+bwd"), device, repeats=repeats)
                row = dict(length=length, mode=mode, backend=backend, **t)
                row["effective_GBps"] = nbytes / (t["median_ms"] * 1e6)
                if mode == "fwd":
                    # Against a same-size copy (cache-resident where the data fits, as the
                    # kernel's inputs are when called repeatedly) and against DRAM bandwidth.
                    row["x_stream_time"] = t["median_ms"] / streams[length]
                    row["x_dram_stream_time"] = t["median_ms"] * dram * 1e6 / nbytes
                if base is None:
                    base = t["median_ms"]
                row[f"speedup_vs_{backends[0]}"] = base / t["median_ms"]
                rows.append(row)
                bar(f"L={length} {mode} {backend}: {t['median_ms']:.2f} ms")
    return dict(op="selective_scan", device=device, machine=machine(device),
                shape=dict(SCAN_SHAPE, dtype="float32", B_C="time-varying (batch, dstate, L)",
                           flags="D, z, delta_bias, delta_softplus"),
                method=(f"median of at least {repeats} timed calls (more for fast calls: ~0.5 s of timing, "
                        "up to 50; 3 when a call takes over 1 s) after 2 warm-ups, "
                        "side by side in one process"),
                stream_ms={str(k): v for k, v in streams.items()},
                dram_copy_GBps=dram,
                bytes_moved={str(L): scan_bytes(scan_inputs(L, "cpu", **SCAN_SHAPE)) for L in lengths},
                results=rows)


QUICK_HELP = "L = 1024, forward only"


def add_arguments(p) -> None:
    p.add_argument("--lengths", type=int, nargs="+", default=None,
                   help=f"sequence lengths (default {' '.join(map(str, SCAN_LENGTHS_FULL))}; "
                        f"--quick: {SCAN_LENGTHS_QUICK[0]})")


def run(args) -> dict:
    lengths = args.lengths or (SCAN_LENGTHS_QUICK if args.quick else SCAN_LENGTHS_FULL)
    modes = ("fwd",) if args.quick else ("fwd", "fwd+bwd")
    return bench_selective_scan(args.device, tuple(lengths), modes, repeats=args.repeats)


def targets(result: dict) -> dict:
    """The issue's CPU targets at L=4096: C++ fwd >= 50x ref, <= 4x the stream time."""
    rows = {(r["length"], r["mode"], r["backend"]): r for r in result["results"]}
    cpp, ref = rows.get((4096, "fwd", "cpp")), rows.get((4096, "fwd", "ref"))
    if not (cpp and ref):
        return {}
    speedup = ref["median_ms"] / cpp["median_ms"]
    return {"cpp_fwd_speedup_vs_ref_L4096": speedup,
            "cpp_fwd_x_stream_time_L4096": cpp["x_stream_time"],
            "cpp_fwd_x_dram_stream_time_L4096": cpp["x_dram_stream_time"],
            "speedup_met": speedup >= 50,
            "stream_met": min(cpp["x_stream_time"], cpp["x_dram_stream_time"]) <= 4}
