"""Per-call cost of effseg.compile's ONNX Runtime backend: the thread-safe default (a fresh
I/O binding and output tensors per call) against reuse_outputs=True (one binding and
buffers per thread, overwritten by that thread's next call), side by side in one process,
on a tiny net where the call overhead dominates and at 1x3x256x256.

    python bench/bench_compile_call_overhead.py [--out bench/results/compile-call-overhead-cpu.json]
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from effseg.bench.script import reexec_with_raised_malloc

reexec_with_raised_malloc(sys.argv, "bench/bench_compile_call_overhead.py")

import torch  # noqa: E402

import effseg  # noqa: E402
from effseg._timing import machine  # noqa: E402


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 1))


def _per_call_us(fn, x, calls: int, rounds: int = 7) -> float:
    fn(x)
    per = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn(x)
        per.append((time.perf_counter() - t0) * 1e6 / calls)
    return statistics.median(per)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "compile-call-overhead-cpu.json"))
    a = ap.parse_args()
    rows = []
    for shape, calls in (((1, 3, 8, 8), 3000), ((1, 3, 256, 256), 100)):
        x = torch.randn(shape)
        fns = {name: effseg.compile(_net(), input_shape=shape, backend="onnxruntime",
                                    reuse_outputs=reuse, intra_op_num_threads=1)
               for name, reuse in (("default", False), ("reuse_outputs", True))}
        per = {k: [] for k in fns}
        for _ in range(3):  # alternate the two so drift hits both
            for k, f in fns.items():
                per[k].append(_per_call_us(f, x, calls))
        d, r = statistics.median(per["default"]), statistics.median(per["reuse_outputs"])
        rows.append({"shape": list(shape), "default_us": d, "reuse_outputs_us": r, "extra_us": d - r,
                     "default_over_reuse": d / r})
        print(f"{shape}: default {d:.1f} us, reuse_outputs {r:.1f} us, +{d - r:.1f} us ({d / r:.3f}x)")
    out = {"bench": "compile_call_overhead", "machine": machine("cpu"), "torch_threads": torch.get_num_threads(),
           "method": "medians of 7 batches of calls per variant, 3 alternating rounds, ORT intra-op threads 1",
           "results": rows}
    Path(a.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
