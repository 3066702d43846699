"""Two builds of effseg._C side by side in one process: the installed one against an older
build (a .so compiled from an earlier commit), through the same op wrappers, alternating
calls on the same inputs. For a refactor of the C++ code that must not change speed.

    python bench/ab_native_builds.py --old /tmp/oldbuild/_C.cpython-311-x86_64-linux-gnu.so \
        --old-commit 174cea4 [--rounds 7] [--out bench/results/ab-native-<isa>.json]

The older build may take raw addresses where the current one takes (address, count)
pairs, and lacks later return values: a thin adapter bridges those differences only.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path

from effseg.bench.script import reexec_with_raised_malloc

reexec_with_raised_malloc(sys.argv, "bench/ab_native_builds.py")

import torch  # noqa: E402

from effseg import _native  # noqa: E402
from effseg._timing import machine  # noqa: E402
from effseg.ops import (  # noqa: E402
    depthwise_conv2d,
    linear_attention,
    selective_scan,
    winograd_conv2d,
)


class OldBuild:
    """The older module with today's calling convention."""

    def __init__(self, path: str):
        spec = importlib.util.spec_from_file_location("effseg_ab_old._C", path)
        self.mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.mod)
        self.calls = 0

    def __getattr__(self, name):
        fn = getattr(self.mod, name)
        if not callable(fn):
            return fn

        def call(*args):
            self.calls += 1
            flat = []
            for i, a in enumerate(args):
                pair = isinstance(a, tuple) and len(a) == 2 and all(isinstance(v, int) for v in a)
                flat.append(a[0] if pair else a)
                if name == "selective_scan_bwd" and i in (24, 26):  # the old dB_numel / dC_numel
                    flat.append(args[i - 1][1])
            out = fn(*flat)
            return True if out is None and name == "winograd_output_transform" else out
        return call


def _cases():
    g = torch.Generator().manual_seed(0)

    def r(*s, scale=1.0):
        return scale * torch.randn(*s, generator=g)

    q, k, v = r(1, 16, 4096), r(1, 16, 4096), r(1, 128, 4096)
    qg, kg, vg = (t.clone().requires_grad_() for t in (q, k, v))
    gy = r(1, 128, 4096)

    def la_bwd(kind):
        def f():
            for t in (qg, kg, vg):
                t.grad = None
            linear_attention(qg, kg, vg, kind=kind, backend="cpp").backward(gy)
        return f

    x = r(1, 64, 128, 128)
    w7, b64 = r(64, 1, 7, 7), r(64)
    xw, ww, bw = r(1, 64, 128, 128), r(64, 64, 3, 3, scale=0.05), r(64)
    L, D, N = 4096, 512, 16
    scan = dict(u=r(1, D, L), delta=r(1, D, L, scale=0.5), A=-torch.rand(D, N) - 0.1, B=r(1, N, L),
                C=r(1, N, L), D=r(D), z=r(1, D, L), delta_bias=r(D, scale=0.1))
    sg = {kk: vv.clone().requires_grad_(kk != "delta_bias") for kk, vv in scan.items()}
    gs = r(1, D, L)

    def scan_bwd():
        for t in sg.values():
            t.grad = None
        selective_scan(**sg, delta_softplus=True, backend="cpp").backward(gs)

    return {
        "linear_attention softplus fwd Ck16 Cv128 N4096":
            lambda: linear_attention(q, k, v, kind="softplus", backend="cpp"),
        "linear_attention softplus fwd+bwd Ck16 Cv128 N4096": la_bwd("softplus"),
        "linear_attention taylor fwd Ck16 Cv128 N4096": lambda: linear_attention(q, k, v, kind="taylor", backend="cpp"),
        "depthwise_conv2d 1x64x128x128 k7 bias+silu":
            lambda: depthwise_conv2d(x, w7, b64, padding=3, activation="silu", backend="cpp"),
        "depthwise_conv2d 1x64x128x128 k7 bias+relu6":
            lambda: depthwise_conv2d(x, w7, b64, padding=3, activation="relu6", backend="cpp"),
        "winograd_conv2d 64x64x128x128 bias+relu": lambda: winograd_conv2d(xw, ww, bw, 1, True, backend="cpp"),
        "selective_scan fwd B1 D512 N16 L4096":
            lambda: selective_scan(**scan, delta_softplus=True, backend="cpp"),
        "selective_scan fwd+bwd B1 D512 N16 L4096": scan_bwd,
    }


def _time(fn, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) * 1e3 / n


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--old", required=True, help="path of the older build's _C .so")
    p.add_argument("--old-commit", required=True, help="the commit it was built from (recorded)")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--out", default=None)
    a = p.parse_args()
    new_lib, old_lib = _native.require(), OldBuild(a.old)
    rows = []
    for name, fn in _cases().items():
        ctx = torch.enable_grad() if "bwd" in name else torch.no_grad()
        with ctx:
            per = {"old": [], "new": []}
            for lib in (old_lib, new_lib):  # warm-up, and how many calls make ~0.2 s
                _native._C = lib
                fn()
            _native._C = new_lib
            n = max(1, int(200 / max(_time(fn, 1), 1e-3)))
            for _ in range(a.rounds):
                for tag, lib in (("old", old_lib), ("new", new_lib)):
                    _native._C = lib
                    per[tag].append(_time(fn, n))
            _native._C = new_lib
        o, w = statistics.median(per["old"]), statistics.median(per["new"])
        rows.append({"case": name, "old_ms": o, "new_ms": w, "new_over_old": w / o, "calls_per_sample": n,
                     "old_samples": per["old"], "new_samples": per["new"]})
        print(f"{name:55s} old {o:8.3f} ms  new {w:8.3f} ms  new/old {w / o:5.3f}", flush=True)
    assert old_lib.calls > 0, "the old build was never called: the adapter is not in the path"
    result = {"bench": "ab_native_builds", "machine": machine("cpu"), "isa": new_lib.build_info(),
              "old_commit": a.old_commit, "simd": os.environ.get("EFFSEG_SIMD", "native"),
              "method": (f"the same op wrapper (backend='cpp') with effseg._C swapped between the two builds; "
                         f"{a.rounds} alternating rounds, each the mean of a batch of calls (~0.2 s); medians "
                         "over rounds; torch threads " + str(torch.get_num_threads())),
              "results": rows}
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
