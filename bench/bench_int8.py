"""INT8 against fp32 in ONNX Runtime on this CPU, per zoo model: latency side by side in
one process and how closely INT8 follows fp32.

For each model: the fp32 ONNX export, its INT8 copy in the ONNX Runtime placement
(quantize(target="cpu"): uint8 activations, Q/DQ around every quantised op) and, for
reference, in the TensorRT placement (target="tensorrt", what `--int8` wrote before);
all three sessions are timed in interleaved rounds (median of medians), and each INT8
file is compared with fp32 on validation images: argmax pixel agreement, mIoU taking the
fp32 argmax as ground truth, max |logit error|. The kernel census counts, in the graph ORT
executes, integer kernels and the fp32 Conv/MatMul/Gemm left.

Weights are freshly initialised and images synthetic (bench_export.py's smooth random
fields): agreement measures quantisation error on untrained logits, a lower bound for
trained models. Whether the CPU has VNNI (AVX512-VNNI / AVX-VNNI) is recorded: without
it ORT's uint8 x int8 kernels are slower and may saturate.
Writes bench/results/int8-cpu.json. Run alone on a quiet machine:
    python bench/bench_int8.py [--size 512] [--models unetformer abcnet] [--calib 8]
--quick: one small model at 64x64, one round, written to a temporary file (a smoke test).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import effseg
from effseg._timing import machine, median_ms
from effseg.bench.contenders import ort_session
from effseg.bench.script import reexec_with_raised_malloc
from effseg.export import quantize, to_onnx
from effseg.export.quantize import miou_from_confusion
from effseg.export.quantize_cpu import kernel_census

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_export import synthetic_images  # noqa: E402  (a sibling script, not a package)

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_MODELS = ["unetformer", "unetformer-dw", "abcnet", "banet", "a2fpn", "bisenetv2", "manet"]
PLACEMENTS = ("cpu", "tensorrt")


def cpu_flags() -> dict:
    """Which int8 dot-product instructions this CPU has (Linux /proc/cpuinfo; {} elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return {f: f in flags for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")}


def agreement(ref: list, out: list) -> dict:
    """Argmax agreement, mIoU vs the fp32 argmax and max |logit error| over paired outputs."""
    agree = total = 0
    err = 0.0
    k = ref[0].shape[1]
    cm = np.zeros((k, k), dtype=np.int64)
    for a, b in zip(ref, out):
        pa, pb = a.argmax(1), b.argmax(1)
        agree += int((pa == pb).sum())
        total += pa.size
        err = max(err, float(np.abs(a - b).max()))
        cm += np.bincount(k * pa.ravel() + pb.ravel(), minlength=k * k).reshape(k, k)
    return {"pixel_agreement": round(agree / total, 5), "miou_vs_fp32": round(miou_from_confusion(cm), 4),
            "max_abs_logit_error": round(err, 5), "max_abs_logit": round(max(float(np.abs(a).max()) for a in ref), 4)}


def bench_model(name, size, calib, valid, threads, tmp: Path, rounds: int, repeats: int) -> dict:
    row = {"model": name}
    fp32 = tmp / f"{name}.onnx"
    to_onnx(effseg.create_model(name, num_classes=6), fp32, input_shape=(1, 3, size, size), progress=False)
    files = {"fp32": fp32}
    for placement in PLACEMENTS:
        path = tmp / f"{name}.int8-{placement}.onnx"
        t0 = time.perf_counter()
        q = quantize(fp32, path, calib, validation=valid, progress=False, target=placement)
        census = kernel_census(path)
        row[f"int8_{placement}"] = {"method": q.method, "quantize_s": round(time.perf_counter() - t0, 1),
                                    "integer_kernels": census["integer"], "fp32_conv_matmul": census["float"]}
        files[f"int8_{placement}"] = path
    sessions = {k: ort_session(p, "cpu", threads) for k, p in files.items()}
    feeds = {k: {s.get_inputs()[0].name: valid[:1]} for k, s in sessions.items()}
    outs = {k: [s.run(None, {s.get_inputs()[0].name: valid[i:i + 1]})[0] for i in range(len(valid))]
            for k, s in sessions.items()}
    times = {k: [] for k in sessions}
    for _ in range(rounds):  # interleaved: drift on a shared machine hits every file alike
        for k, s in sessions.items():
            times[k].append(median_ms(lambda s=s, f=feeds[k]: s.run(None, f), "cpu", repeats=repeats)["median_ms"])
    row["fp32_ms"] = round(float(np.median(times["fp32"])), 2)
    for placement in PLACEMENTS:
        key = f"int8_{placement}"
        ms = round(float(np.median(times[key])), 2)
        row[key].update(ms=ms, speedup=round(row["fp32_ms"] / ms, 3), **agreement(outs["fp32"], outs[key]))
    cpu = row["int8_cpu"]
    row["verdict"] = ("int8 pays" if cpu["speedup"] > 1.05 else
                      "no gain: ship fp32" if cpu["speedup"] < 1.0 else "about even")
    return row


def run(models, size, n_calib, n_valid, rounds, repeats, out: Path) -> dict:
    threads = torch.get_num_threads()
    calib = synthetic_images(n_calib, size, seed=1)
    valid = synthetic_images(n_valid, size, seed=2)
    result = {"bench": "int8", "device": "cpu", "machine": machine("cpu"), "cpu_flags": cpu_flags(),
              "threads": threads,
              "input": {"batch": 1, "channels": 3, "height": size, "width": size, "num_classes": 6},
              "method": (f"to_onnx fp32, then quantize({n_calib} synthetic calibration images, each target's "
                         "default calibration: minmax for 'cpu', entropy for 'tensorrt'); ONNX Runtime CPU sessions (intra_op_num_threads="
                         f"{threads}), medians of {rounds} interleaved rounds of median_ms (>= {repeats} "
                         f"calls); agreement on {n_valid} other synthetic images; weights freshly initialised"),
              "rows": []}
    out.parent.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="effseg-bench-int8-") as tmp:
        for name in models:
            t0 = time.perf_counter()
            try:
                row = bench_model(name, size, calib, valid, threads, Path(tmp), rounds, repeats)
            except Exception as exc:  # noqa: BLE001  a failing model is a row with its reason, not a lost run
                row = {"model": name, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}
            row["wall_s"] = round(time.perf_counter() - t0, 1)
            result["rows"].append(row)
            print(json.dumps(row), flush=True)
            result["wall_s"] = round(time.perf_counter() - t_all, 1)
            out.write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    ap.add_argument("--calib", type=int, default=8, help="calibration images (default 8)")
    ap.add_argument("--valid", type=int, default=4, help="validation images (default 4)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (default 5)")
    ap.add_argument("--quick", action="store_true", help="unetformer-dw at 64x64, one round, to a temp file")
    ap.add_argument("--out", default=None, help="default bench/results/int8-cpu.json (--quick: a temp file)")
    args = ap.parse_args(argv)
    unknown = sorted(set(args.models) - set(effseg.list_models()))
    if unknown:
        ap.error(f"--models: unknown {unknown}; the zoo has {effseg.list_models()}")
    if args.size < 32 or args.calib < 1 or args.valid < 1 or args.rounds < 1:
        ap.error("--size must be >= 32 and --calib, --valid, --rounds >= 1")
    if args.quick:
        out = Path(args.out or Path(tempfile.gettempdir()) / "effseg-int8-quick.json")
        run(["unetformer-dw"] if args.models == DEFAULT_MODELS else args.models, 64, 2, 1, 1, 1, out)
    else:
        out = Path(args.out or RESULTS / "int8-cpu.json")
        run(args.models, args.size, args.calib, args.valid, args.rounds, 5, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    reexec_with_raised_malloc(sys.argv, "bench/bench_int8.py")
    sys.exit(main())
