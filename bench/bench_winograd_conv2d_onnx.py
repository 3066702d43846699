"""winograd_conv2d's ONNX Winograd graph (effseg/export/winograd_conv2d.py) against the
engine's own convolution, one layer at a time: the plain Conv export and the graph with
F(2x2) and F(4x4) forced and chosen per layer, in OpenVINO (where it installs) and ONNX
Runtime, all timed in the same interleaved rounds. The layers are the 3x3 ones of the
ResNet encoders in the zoo at 512 x 512 (batch 1, bias and ReLU as after BN folding).

It sets the winograd_conv2d pass's channel floor per backend. Writes
bench/results/winograd_conv2d_onnx-<device>.json. Run:
    python bench/bench_winograd_conv2d_onnx.py [--repeats 20] [--quick]
"""
from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from effseg._timing import machine
from effseg.bench.script import (
    common_parser,
    isa_env,
    omp_wait,
    prepare,
    result_path,
    write_json,
)
from effseg.compile.autotune import interleaved
from effseg.export import winograd_conv2d as wg
from effseg.export.onnx import export_onnx
from effseg.ops.winograd_conv2d import winograd_weight
from effseg.runtime.sessions import ort_session

RESULTS = Path(__file__).resolve().parent / "results"
# (channels, map side): ResNet-18/34 stages at 512^2, and 128 channels on a 128^2 map.
LAYERS = [(64, 128), (128, 64), (128, 128), (256, 32), (256, 64), (512, 16)]
FORMS = {"graph_auto": None, "graph_f2": 2, "graph_f4": 4}


class Layer(torch.nn.Module):
    def __init__(self, c: int):
        super().__init__()
        g = torch.Generator().manual_seed(c)
        self.w = torch.nn.Parameter(torch.randn(c, c, 3, 3, generator=g) / (3 * c ** 0.5))
        self.register_buffer("wt", winograd_weight(self.w.detach()))
        self.b = torch.nn.Parameter(torch.randn(c, generator=g) * 0.1)

    def forward(self, x):
        return torch.ops.effseg.winograd_conv2d(x, self.w, self.wt, self.b, 1, 1, True)


def engines(threads: int) -> dict:
    """{name: open(path) -> run(x_numpy) -> y}: ONNX Runtime, and OpenVINO where it imports."""
    out = {"onnxruntime": lambda p: _ort(p, threads)}
    try:
        import openvino  # noqa: F401
    except ImportError:
        return out
    from effseg.runtime.sessions import openvino_model

    def ov(path):
        req = openvino_model(path, threads=threads).create_infer_request()
        return lambda x: req.infer({0: x})[0]
    out["openvino"] = ov
    return out


def _ort(path, threads):
    s = ort_session(str(path), device="cpu", threads=threads, optimization="all", quiet=True)
    name = s.get_inputs()[0].name
    return lambda x: s.run(None, {name: x})[0]


def bench_layer(c: int, side: int, repeats: int, threads: int, budget_s: float) -> list[dict]:
    layer = Layer(c).eval()
    x = torch.randn(1, c, side, side, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = F.relu(F.conv2d(x, layer.w, layer.b, padding=1)).numpy()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"plain": Path(tmp) / "plain.onnx"}
        export_onnx(layer, (x,), paths["plain"])
        for form, tile in FORMS.items():
            paths[form] = Path(tmp) / f"{form}.onnx"
            export_onnx(layer, (x,), paths[form], custom_translations=wg.translation_table(tile))
        xn = x.numpy()
        for engine, open_ in engines(threads).items():
            runs = {form: open_(p) for form, p in paths.items()}
            err = {form: float(np.abs(run(xn) - want).max() / np.abs(want).max()) for form, run in runs.items()}
            samples = interleaved({f: (lambda r=r: r(xn)) for f, r in runs.items()}, budget_s,
                                  min_rounds=repeats)
            ms = {f: round(statistics.median(v), 3) for f, v in samples.items()}
            rows.append({"channels": c, "side": side, "engine": engine,
                         "auto_tile": wg.tile_size(side, side), "median_ms": ms,
                         "plain_over": {f: round(ms["plain"] / ms[f], 3) for f in FORMS},
                         "max_rel_err": {f: float(f"{e:.2e}") for f, e in err.items()},
                         "rounds": len(samples["plain"])})
    return rows


def main():
    p = common_parser(__doc__, "two small layers, 3 rounds: a smoke run")
    args = prepare(p.parse_args())
    if args.device != "cpu":
        raise SystemExit("bench_winograd_conv2d_onnx times CPU engines: --device cpu only")
    layers, budget = LAYERS, 2.0
    if args.quick:
        layers, budget, args.repeats = [(16, 16), (32, 36)], 0.1, 3
    threads = torch.get_num_threads()
    rows = [r for c, s in layers for r in bench_layer(c, s, args.repeats, threads, budget)]
    result = {"bench": "winograd_conv2d_onnx", "device": "cpu", "machine": machine(), "isa_caps": isa_env(),
              "omp_wait": omp_wait(), "threads": threads,
              "method": ("one 3x3 conv + bias + ReLU, batch 1, float32; plain = effseg's bundle export (a Conv), "
                         "graph_* = the Winograd graph (f2 / f4 forced, auto = tile_size per layer); every form "
                         "of a layer on one engine timed in the same interleaved rounds (about 2 s); "
                         "plain_over = plain's median over the form's (> 1: the graph is faster); "
                         "max_rel_err against F.conv2d, relative to the output's largest value"),
              "results": rows}
    out = write_json(result, result_path(RESULTS, "winograd_conv2d_onnx", args))
    for r in rows:
        po = r["plain_over"]
        print(f"{r['engine']:12s} {r['channels']:4d}ch {r['side']:4d}^2  plain {r['median_ms']['plain']:7.2f} ms  "
              f"f2 {po['graph_f2']:.2f}x  f4 {po['graph_f4']:.2f}x  auto(F{r['auto_tile']}) {po['graph_auto']:.2f}x")
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
