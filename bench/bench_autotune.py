"""effseg.compile against what it wraps, side by side in one process: eager PyTorch vs
effseg.eager, and ONNX Runtime on torch.onnx's export (the `effseg bench` peer) vs
effseg.onnxruntime, each effseg backend with every pass (autotune off, as before autotune)
and autotuned (a fresh record folder, so this run measures). The effseg ORT session is
also called the way the peer is (session.run on numpy), to split the graph from the call
path, and ORT's optimised graphs of both exports are compared node by node.

All rows are timed in alternating rounds (per row and round an untimed call, then
--block timed ones; the order reversed every other round), medians. The untimed call
matters: a pool that just ran (an ORT session's, OpenMP's) spins on after its call and
slows the next row's first call several times over on 2 cores. Run it alone.

    python bench/bench_autotune.py [--model unetformer-dw] [--size 128] [--rounds 20] [--block 3]
                                   [--threads N] [--out bench/results/autotune-cpu.json]
"""
import argparse
import collections
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

from effseg.bench.script import allocator, reexec_with_raised_malloc

reexec_with_raised_malloc(sys.argv, "bench/bench_autotune.py")

import torch

import effseg
from effseg._timing import machine
from effseg.bench import contenders as C
from effseg.bench.model_bench import open_gates, set_threads, versions
from effseg.compile import Tuner


def _ort_graph(onnx_bytes_or_path, threads: int, tmp: Path, name: str) -> dict:
    """Op counts of the graph ORT actually runs (after its own optimiser)."""
    import onnx

    from effseg.runtime.sessions import import_ort

    ort = import_ort()
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.log_severity_level = threads, 3
    so.optimized_model_filepath = str(tmp / f"{name}.opt.onnx")
    ort.InferenceSession(onnx_bytes_or_path, so, providers=["CPUExecutionProvider"])
    proto = onnx.load(so.optimized_model_filepath, load_external_data=False)
    return dict(collections.Counter(f"{n.domain + ':' if n.domain else ''}{n.op_type}" for n in proto.graph.node))


def _compiled(model, x, backend, autotune, threads):
    opts = {"intra_op_num_threads": threads} if backend == "onnxruntime" else {}
    with C.quiet():
        return effseg.compile(model, example_input=x, backend=backend, autotune=autotune, **opts)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="unetformer-dw")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--block", type=int, default=3,
                    help="timed calls per row per round, after one untimed call (default 3)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "autotune-cpu.json"))
    a = ap.parse_args()
    if a.size < 8 or a.rounds < 1 or a.block < 1:
        raise SystemExit("--size must be >= 8, --rounds and --block >= 1")
    threads = set_threads(a.threads or torch.get_num_threads())["requested"]
    warnings.simplefilter("ignore")
    model = effseg.create_model(a.model, 6).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    open_gates(model)
    x = torch.randn(1, 3, a.size, a.size, generator=torch.Generator().manual_seed(0))
    ctx = C.Context(model, x, model, x, "cpu", "fp32", threads)
    tmp = Path(tempfile.mkdtemp(prefix="effseg-bench-autotune-"))
    rows, info = {}, {}
    with torch.no_grad():
        rows["eager"] = lambda: model(x)
        peer = C.BUILDERS["onnxruntime"](ctx)
        rows["onnxruntime"] = peer.call
        info["onnxruntime"] = peer.info
        for backend in ("eager", "onnxruntime"):
            for label, tune in (("every pass", False), ("autotuned", Tuner(cache_dir=tmp / "records"))):
                t0 = time.perf_counter()
                cm = _compiled(model, x, backend, tune, threads)
                name = f"effseg.{backend} ({label})"
                rows[name] = lambda cm=cm: cm(x)
                info[name] = {"setup_s": round(time.perf_counter() - t0, 2), "autotune": cm.report()["autotune"],
                              "passes_changed": {p["pass"]: p["changed"] for p in cm.report()["passes"] if p["changed"]}}
                if backend == "onnxruntime" and not tune:
                    sess = cm._entries[tuple(x.shape)].runner.session
                    xn = x.numpy()
                    rows["effseg ORT session, called as the peer"] = lambda s=sess, xn=xn: s.run(None, {"x": xn})
        graphs = {}
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "peer.onnx"
            C._export_peer_or_plain(model, x, path)
            graphs["onnxruntime"] = _ort_graph(str(path), threads, tmp, "peer")
        from effseg.compile.backends.onnxruntime import export_graph
        from effseg.compile.capture import capture

        cap = capture(model, x, torch.device("cpu"), backend="onnxruntime")
        with C.quiet():
            proto, _, _ = export_graph(cap.gm, x, tmp / "effseg.onnx", 18, "onnxruntime")
        graphs["effseg.onnxruntime (every pass)"] = _ort_graph(proto.SerializeToString(), threads, tmp, "effseg")
        times = {k: [] for k in rows}
        for f in rows.values():
            f()
        names = list(rows)
        for r in range(a.rounds):
            for k in (names if r % 2 == 0 else names[::-1]):
                for i in range(a.block + 1):
                    t0 = time.perf_counter()
                    rows[k]()
                    if i:  # the first call of a block takes the hand-over from the row before
                        times[k].append((time.perf_counter() - t0) * 1e3)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratios = {f"{k} / {base}": med[k] / med[base] for k in med for base in ("eager", "onnxruntime")
              if k.startswith(f"effseg.{base} ") or (base == "onnxruntime" and k.startswith("effseg ORT"))}
    for k, v in med.items():
        print(f"{k:45s} {v:9.2f} ms")
    for k, v in ratios.items():
        print(f"{k:60s} {v:6.3f}x")
    same = graphs["onnxruntime"] == graphs["effseg.onnxruntime (every pass)"]
    print(f"ORT's optimised graphs of the two exports are {'the same' if same else 'different'}")
    out = {"bench": "autotune", "machine": machine("cpu"), "versions": versions(), "threads": threads,
           "allocator": allocator(), "model": a.model, "input": [1, 3, a.size, a.size],
           "method": (f"{a.rounds} rounds; per row and round one untimed call (it takes the hand-over "
                      "from the previous row, whose thread pool may still spin) then "
                      f"{a.block} timed calls; the row order reversed every other round; medians "
                      "over all timed calls; all rows in one process"),
           "median_ms": med, "ratios": ratios, "rows": info, "ort_optimised_graphs": graphs,
           "ort_optimised_graphs_same": same}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
