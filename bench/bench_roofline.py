"""How much of each zoo model's OpenVINO time is already float32 arithmetic at the CPU's
peak: OpenVINO's per-node profile of the plain export (the bench_compile peer), each
dense product's FLOPs from its shapes, and the rate of a large float32 GEMM as the peak.

It bounds what any float32 engine or kernel could win on these models without doing
fewer multiplies (the issue's "<= 0.9x the best peer" on models where OpenVINO or ONNX
Runtime is that peer). Writes bench/results/roofline-<device>[-avx2].json. Run:
    python bench/bench_roofline.py [--models NAME ...] [--size 512] [--repeats 5]
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import effseg
from effseg._timing import machine
from effseg.bench.contenders import export_onnx_peer, has_scan, plain_copy
from effseg.bench.model_bench import open_gates
from effseg.bench.roofline import dense_flops, summarise
from effseg.bench.script import (
    common_parser,
    isa_env,
    omp_wait,
    prepare,
    reexec_with_raised_malloc,
    result_path,
    write_json,
)
from effseg.models.registry import list_models
from effseg.runtime.sessions import openvino_model

RESULTS = Path(__file__).resolve().parent / "results"
GEMM_N = 2048


def gemm_peak(repeats: int) -> dict:
    """float32 GEMM rate (GFLOP/s) of PyTorch's matmul and OpenVINO's MatMul on N x N,
    torch's threads; the larger is the peak the models are held against."""
    import numpy as np
    import openvino as ov

    a = torch.randn(GEMM_N, GEMM_N)
    b = torch.randn(GEMM_N, GEMM_N)
    flop = 2 * GEMM_N ** 3

    def rate(fn):
        for _ in range(2):
            fn()
        ts = []
        for _ in range(max(repeats, 5)):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        return flop / min(ts) / 1e9

    p = ov.opset13.parameter([GEMM_N, GEMM_N], np.float32)
    m = ov.Model([ov.opset13.matmul(p, ov.opset13.constant(b.numpy()), False, False)], [p])
    compiled = openvino_model(m, threads=torch.get_num_threads())
    req, an = compiled.create_infer_request(), a.numpy()
    torch_rate = rate(lambda: torch.mm(a, b))
    ov_rate = rate(lambda: req.infer({0: an}))
    return {"n": GEMM_N, "torch_gflops_per_s": round(torch_rate, 1), "openvino_gflops_per_s": round(ov_rate, 1),
            "peak_gflops_per_s": round(max(torch_rate, ov_rate), 1), "how": "best of the timed calls"}


def _shape(ps):
    return [d.get_length() if d.is_static else None for d in ps]


def profile_model(name: str, size: int, repeats: int, peak: float) -> dict:
    model = effseg.create_model(name, 6).eval()
    open_gates(model)
    if has_scan(model):
        return {"model": name, "skipped": "a scan net: OpenVINO is not its peer (bench_compile cuts its scans)"}
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "peer.onnx"
        plain, _ = plain_copy(model)
        export_onnx_peer(plain, x, path)
        compiled = openvino_model(path, threads=threads)
        # A second compile with the profiler on, which may cost time of its own: the
        # first one times the inference.
        prof = openvino_model(path, threads=threads, profile=True)
    req, preq, xn = compiled.create_infer_request(), prof.create_infer_request(), x.numpy()
    for _ in range(2):
        req.infer({0: xn})
        preq.infer({0: xn})
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        req.infer({0: xn})
        ts.append((time.perf_counter() - t) * 1e3)
    shapes = {}
    for op in prof.get_runtime_model().get_ordered_ops():
        ins = [_shape(op.input(i).get_partial_shape()) for i in range(op.get_input_size())]
        out = _shape(op.output(0).get_partial_shape()) if op.get_output_size() else []
        shapes[op.get_friendly_name()] = (ins, out)
    runs = []
    for _ in range(repeats):
        preq.infer({0: xn})
        runs.append([{"type": pi.node_type, "ms": pi.real_time.total_seconds() * 1e3,
                      "flops": dense_flops(pi.node_type, *shapes.get(pi.node_name, ([], [])))}
                     for pi in preq.get_profiling_info()])
    totals = [sum(n["ms"] for n in r) for r in runs]
    median_run = runs[sorted(range(len(runs)), key=lambda i: totals[i])[len(runs) // 2]]
    return {"model": name, "openvino_median_ms": round(statistics.median(ts), 3), **summarise(median_run, peak)}


def main():
    reexec_with_raised_malloc(sys.argv, "bench/bench_roofline.py")
    p = common_parser(__doc__, "one model at 128x128: a smoke run")
    p.add_argument("--models", nargs="+", default=list(list_models()))
    p.add_argument("--size", type=int, default=512)
    args = prepare(p.parse_args())
    if args.device != "cpu":
        raise SystemExit("bench_roofline profiles OpenVINO's CPU plugin: --device cpu only")
    if args.quick:
        args.models, args.size = args.models[:1], 128
    peak = gemm_peak(args.repeats)
    rows = [profile_model(m, args.size, args.repeats, peak["peak_gflops_per_s"]) for m in args.models]
    result = {"bench": "roofline", "device": "cpu", "machine": machine(), "isa_caps": isa_env(),
              "omp_wait": omp_wait(), "threads": torch.get_num_threads(),
              "input": f"1x3x{args.size}x{args.size} float32, batch 1",
              "method": ("OpenVINO CPU plugin (latency hint, f32) on torch.onnx's export of the plain model, "
                         "as bench_compile's peer; per-node real times of the median of the profiled runs; "
                         "FLOPs (multiply-add = 2) of convolutions and matmuls from the executed graph's "
                         "shapes; peak = the faster float32 GEMM rate of torch.mm and OpenVINO's MatMul at "
                         f"{GEMM_N}^3. bound_dense_at_peak: the time if every dense product ran at the peak "
                         "and the rest as now, over the time now; bound_dense_only_at_peak: the same with "
                         "the rest free."),
              "gemm": peak, "results": rows}
    out = write_json(result, result_path(RESULTS, "roofline", args))
    for r in rows:
        if "skipped" in r:
            print(f"{r['model']:14s} skipped: {r['skipped']}")
            continue
        print(f"{r['model']:14s} {r['openvino_median_ms']:8.1f} ms  dense {r['dense_share']:.0%} of time at "
              f"{r['dense_fraction_of_peak']:.0%} of peak; bound {r['bound_dense_at_peak']:.2f}x "
              f"(rest free: {r['bound_dense_only_at_peak']:.2f}x)")
    print(f"peak {peak['peak_gflops_per_s']} GFLOP/s; wrote {out}")


if __name__ == "__main__":
    main()
