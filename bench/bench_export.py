"""Export of every zoo model at 512^2 on this CPU: export time, ONNX Runtime fp32 vs INT8
(effseg.export.quantize, entropy calibration) latency side by side in one process, and
how often INT8 picks the fp32 class.

The zoo's weights here are freshly initialised (no checkpoints ship), and the images are
synthetic (smooth random fields: low-resolution noise upsampled, plus pixel noise), so
agreement figures measure quantisation error on untrained logits, which sit closer
together than a trained model's: a lower bound for trained models, not a claim about them.
Writes bench/results/export-cpu.json. Run:
    python bench/bench_export.py [--size 512] [--models unetformer abcnet] [--calib 8]

--corpus instead exports the user-style models of tests/helpers/user_models.py (einsum
attentions, every interpolate mode, adaptive pooling, MHA/SDPA, norms, grid_sample,
window attention, a two-path net) with effseg (to_onnx) and with torch.onnx's own dynamo
export where that works, and records export time, node count, ORT latency of both, and
what check_tensorrt 10.3 finds fatal (bench/results/export-corpus-cpu.json). --quick
runs three of them once, as a smoke test, not a measurement.
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
from effseg.export import check_tensorrt, fatal, quantize, to_onnx
from effseg.runtime import normalize

RESULTS = Path(__file__).resolve().parent / "results"


def synthetic_images(n: int, size: int, seed: int) -> np.ndarray:
    """(n, 3, size, size) normalised inputs from smooth random RGB fields."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        low = torch.from_numpy(rng.uniform(0, 255, (1, 3, 8, 8)).astype(np.float32))
        img = torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)[0]
        img = (img.permute(1, 2, 0).numpy() + rng.normal(0, 8, (size, size, 3))).clip(0, 255)
        out.append(normalize(img.astype(np.uint8)))
    return np.stack(out).astype(np.float32)


def bench_model(name: str, size: int, calib: np.ndarray, valid: np.ndarray, threads: int, tmp: Path) -> dict:
    row = {"model": name}
    model = effseg.create_model(name, num_classes=6)
    fp32 = tmp / f"{name}.onnx"
    rep = to_onnx(model, fp32, input_shape=(1, 3, size, size))
    row.update(export_s=rep.export_s, nodes=rep.nodes, fp32_bytes=rep.bytes,
               ort_fp32_rel_err_vs_torch=rep.parity["rel_err"])
    row["tensorrt_check_fatal"] = {v: len(fatal(check_tensorrt(fp32, trt_version=v))) for v in ("10.3", "11")}
    int8 = tmp / f"{name}.int8.onnx"
    t0 = time.perf_counter()
    q = quantize(fp32, int8, calib, method="entropy", validation=valid, progress=False)
    row.update(quantize_s=round(time.perf_counter() - t0, 1), int8_bytes=q.int8_bytes,
               quantized_nodes=q.quantized_nodes, int8_pixel_agreement=q.pixel_agreement,
               int8_miou_vs_fp32_labels=q.miou)
    row["int8_tensorrt_check_fatal"] = {v: len(fatal(check_tensorrt(int8, trt_version=v))) for v in ("10.3", "11")}
    sessions = {k: ort_session(p, "cpu", threads) for k, p in (("fp32", fp32), ("int8", int8))}
    x = valid[:1]
    feeds = {k: {s.get_inputs()[0].name: x} for k, s in sessions.items()}
    times = {k: [] for k in sessions}
    for _ in range(3):  # interleaved rounds: drift on a shared machine hits both alike
        for k, s in sessions.items():
            times[k].append(median_ms(lambda s=s, f=feeds[k]: s.run(None, f), "cpu", repeats=5)["median_ms"])
    for k in sessions:
        row[f"ort_{k}_ms"] = round(float(np.median(times[k])), 2)
    row["int8_speedup"] = round(row["ort_fp32_ms"] / row["ort_int8_ms"], 3)
    return row


def _ort_ms(path, x, threads, repeats):
    sess = ort_session(path, "cpu", threads)
    feed = {sess.get_inputs()[0].name: x}
    return round(median_ms(lambda: sess.run(None, feed), "cpu", repeats=repeats)["median_ms"], 3)


def bench_corpus_model(name, ctor, shape, threads, tmp: Path, repeats: int) -> dict:
    """effseg's to_onnx against torch.onnx.export(dynamo=True) on one user-style model."""
    torch.manual_seed(0)
    model = ctor().eval()
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    row = {"model": name, "input": list(shape)}
    ours = tmp / f"{name}.effseg.onnx"
    t0 = time.perf_counter()
    rep = to_onnx(model, ours, input_shape=shape)
    row["effseg"] = {"export_s": round(time.perf_counter() - t0, 2), "nodes": rep.nodes,
                     "rel_err": rep.parity["rel_err"],
                     "trt10.3_fatal": len(fatal(check_tensorrt(ours, trt_version="10.3"))),
                     "ort_ms": _ort_ms(ours, x.numpy(), threads, repeats)}
    theirs = tmp / f"{name}.torch.onnx"
    t0 = time.perf_counter()
    try:
        with torch.no_grad():
            torch.onnx.export(model, (x,), str(theirs), dynamo=True, opset_version=17)
        import onnx

        row["torch_onnx"] = {"export_s": round(time.perf_counter() - t0, 2),
                             "nodes": len(onnx.load(str(theirs)).graph.node),
                             "trt10.3_fatal": len(fatal(check_tensorrt(theirs, trt_version="10.3"))),
                             "ort_ms": _ort_ms(theirs, x.numpy(), threads, repeats)}
    except Exception as exc:  # noqa: BLE001  torch.onnx failing on a user model is a result, not a crash
        row["torch_onnx"] = {"error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"}
    return row


def corpus_main(args) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.helpers.user_models import CORPUS

    names = ["einsum_taylor", "psp_head", "interp_bicubic"] if args.quick else list(CORPUS)
    threads = torch.get_num_threads()
    result = {"bench": "export-corpus", "device": "cpu", "machine": machine("cpu"), "threads": threads,
              "quick": args.quick,
              "method": ("effseg.export.to_onnx (opset 17, fp32, ORT parity) vs torch.onnx.export(dynamo=True, "
                         "opset 17) of the same eval model; ONNX Runtime CPU median_ms per file "
                         f"(intra_op_num_threads={threads}); weights seed 0"), "rows": []}
    out = Path(args.out if args.out != str(RESULTS / "export-cpu.json") else RESULTS / "export-corpus-cpu.json")
    if args.quick:
        out = Path(tempfile.gettempdir()) / "effseg-export-corpus-quick.json"
    with tempfile.TemporaryDirectory(prefix="effseg-bench-corpus-") as tmp:
        for name in names:
            ctor, shape = CORPUS[name]
            try:
                row = bench_corpus_model(name, ctor, shape, threads, Path(tmp), 1 if args.quick else 20)
            except Exception as exc:  # noqa: BLE001  one failing model is a row with its reason
                row = {"model": name, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}
            result["rows"].append(row)
            print(json.dumps(row), flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


def main() -> int:
    reexec_with_raised_malloc(sys.argv, "bench/bench_export.py")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", action="store_true", help="user-style models vs torch.onnx's own export")
    ap.add_argument("--quick", action="store_true", help="with --corpus: three models, one run each (smoke)")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--models", nargs="+", default=effseg.list_models())
    ap.add_argument("--calib", type=int, default=8, help="calibration images (default 8)")
    ap.add_argument("--valid", type=int, default=4, help="validation images (default 4)")
    ap.add_argument("--out", default=str(RESULTS / "export-cpu.json"))
    args = ap.parse_args()
    if args.corpus:
        return corpus_main(args)
    if args.quick:
        ap.error("--quick goes with --corpus")
    threads = torch.get_num_threads()
    calib = synthetic_images(args.calib, args.size, seed=1)
    valid = synthetic_images(args.valid, args.size, seed=2)
    result = {"bench": "export", "device": "cpu", "machine": machine("cpu"), "threads": threads,
              "input": {"batch": 1, "channels": 3, "height": args.size, "width": args.size, "num_classes": 6},
              "method": ("to_onnx (opset 17, fp32, parity-checked) then quantize (entropy, "
                         f"{args.calib} synthetic calibration images; agreement on {args.valid} other "
                         "synthetic images); ONNX Runtime CPU sessions with intra_op_num_threads="
                         f"{threads}, medians of 3 interleaved rounds of median_ms (>= 5 calls); "
                         "weights freshly initialised (seed 0)"),
              "rows": []}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="effseg-bench-export-") as tmp:
        for name in args.models:
            t0 = time.perf_counter()
            try:
                row = bench_model(name, args.size, calib, valid, threads, Path(tmp))
            except Exception as exc:  # noqa: BLE001  a failing model is a row with its reason, not a lost run
                row = {"model": name, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}
            row["wall_s"] = round(time.perf_counter() - t0, 1)
            result["rows"].append(row)
            print(json.dumps(row), flush=True)
            result["wall_s"] = round(time.perf_counter() - t_all, 1)
            out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
