"""Op benchmarks behind `effseg bench` and bench/bench_*.py."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import torch

from .._timing import dram_GBps, machine, median_ms, stream_ms

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


def _progress(total: int, enabled: bool):
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    if not enabled:
        return lambda msg: None
    if tqdm is not None:
        bar = tqdm(total=total, unit="case")

        def step(msg):
            bar.set_postfix_str(msg)
            bar.update(1)
        return step
    count = [0]

    def step(msg):
        count[0] += 1
        print(f"[{count[0]}/{total}] {msg}", flush=True)
    return step


def run_op_bench(op: str, device: str = "cpu", quick: bool = True, out: Optional[str] = None,
                 repeats: int = 5) -> dict:
    if op != "selective_scan":
        raise ValueError(f"op must be 'selective_scan', got {op!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' requested but torch sees no CUDA device")
    result = bench_selective_scan(device, SCAN_LENGTHS_QUICK if quick else SCAN_LENGTHS_FULL,
                                  ("fwd",) if quick else ("fwd", "fwd+bwd"), repeats=repeats)
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=2) + "\n")
    return result
