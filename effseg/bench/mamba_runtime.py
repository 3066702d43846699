"""A CM-UNet bundle on the CPU three ways, side by side in one process: effseg eager
(PyTorch with effseg's C++ cross scan), the runtime's native-scan form (ONNX Runtime
segments around the same C++ scan; what `effseg run` / `effseg predict` use), and the
plain standard-op model.onnx in ONNX Runtime (the portable form, which TensorRT parses).

Issue 19's goal: the bundle through the runtime within 1.5x of eager. Times are medians
of --repeats calls after a warm-up, the three variants alternating round by round so
that drift on a shared machine hits all of them. The model-call rows time the network
alone on a normalised (1, 3, S, S) input; the predict rows time Predictor.predict on an
S x S uint8 image (normalisation, the network, argmax). --quick: a two-block SS2D net
at 32x32, a check of the plumbing, not of the target.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._timing import machine
from ..nn.ss2d import SS2D

RESULT_NAME = "mamba-runtime"
QUICK_HELP = "a two-block SS2D net at 32x32 instead of CM-UNet at --size (checks the plumbing)"
GOAL = 1.5


class TinySS2DNet(nn.Module):
    """Strided conv stem -> two residual SS2D blocks (channels-last) -> 1x1 head -> x2 up:
    the cheapest net with CM-UNet's scan block, for quick runs and tests."""

    in_channels = 3

    def __init__(self, num_classes: int = 3, width: int = 8, d_state: int = 4, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.stem = nn.Conv2d(self.in_channels, width, 3, stride=2, padding=1)
        self.blocks = nn.ModuleList(SS2D(width, d_state=d_state, expand=1.0) for _ in range(2))
        self.head = nn.Conv2d(width, num_classes, 1)
        self.num_classes = num_classes

    def forward(self, x):
        f = F.relu(self.stem(x)).permute(0, 2, 3, 1)
        for b in self.blocks:
            f = f + b(f)
        out = self.head(f.permute(0, 3, 1, 2))
        return F.interpolate(out, scale_factor=2.0, mode="bilinear", align_corners=False)


def add_arguments(p) -> None:
    p.add_argument("--model", default="cmunet", help="zoo name of an SS2D model (default cmunet)")
    p.add_argument("--size", type=int, default=512, help="image side (default 512)")
    p.add_argument("--bundle-dir", default=None,
                   help="export the bundle here and keep it (default: a temporary folder)")


def _median_s(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _scan_seconds(predictor, x, repeats: int) -> float:
    """Median seconds per call spent inside the C++ scans of the native-scan form (the
    rest is ONNX Runtime and the hand-over between segments)."""
    from ..runtime import segmented

    spent = [0.0]
    inner = segmented.native_scan.cross_selective_scan

    def timed(*a):
        t0 = time.perf_counter()
        try:
            return inner(*a)
        finally:
            spent[0] += time.perf_counter() - t0

    per = []
    segmented.native_scan.cross_selective_scan = timed
    try:
        for _ in range(repeats):
            spent[0] = 0.0
            predictor._model(x)
            per.append(spent[0])
    finally:
        segmented.native_scan.cross_selective_scan = inner
    return statistics.median(per)


def run(args) -> dict:
    from ..export.pipeline import BundleOptions, export_bundle
    from ..models import create_model
    from ..runtime.predictor import Predictor

    size = 32 if args.quick else args.size
    torch.manual_seed(0)
    model = (TinySS2DNet() if args.quick else create_model(args.model, num_classes=6)).eval()
    label = "tiny-ss2d" if args.quick else args.model
    with tempfile.TemporaryDirectory(prefix="effseg-bench-mamba-") as tmp:
        bundle = Path(args.bundle_dir or Path(tmp) / "bundle")
        t0 = time.perf_counter()
        export_bundle(model, bundle, BundleOptions(size=size, num_classes=getattr(model, "num_classes", 6),
                                                   progress=False))
        export_s = time.perf_counter() - t0
        # --threads holds ONNX Runtime to the same count as torch and effseg's kernels.
        native = Predictor(bundle, backend="onnxruntime", native_scan=True, threads=args.threads)
        plain = Predictor(bundle, backend="onnxruntime", native_scan=False, threads=args.threads)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 3, size, size)).astype(np.float32)
    img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    xt = torch.from_numpy(x)

    def eager():
        with torch.no_grad():
            return model(xt)

    calls = {"eager": eager, "runtime_native": lambda: native._model(x), "runtime_plain": lambda: plain._model(x)}
    predicts = {"runtime_native": lambda: native.predict(img), "runtime_plain": lambda: plain.predict(img)}
    out = {k: np.asarray(f() if k != "eager" else f().numpy()) for k, f in calls.items()}  # warm-up
    for f in predicts.values():
        f()
    scale = float(np.abs(out["eager"]).max())
    parity = {k: float(np.abs(out[k] - out["eager"]).max()) / scale for k in ("runtime_native", "runtime_plain")}
    repeats = 1 if args.quick else max(1, args.repeats)
    rounds = {k: [] for k in calls}
    prounds = {k: [] for k in predicts}
    for _ in range(1 if args.quick else 3):
        for k, f in calls.items():
            rounds[k].append(_median_s(f, repeats))
        for k, f in predicts.items():
            prounds[k].append(_median_s(f, repeats))
    call_s = {k: statistics.median(v) for k, v in rounds.items()}
    scan_s = _scan_seconds(native, x, repeats)
    predict_s = {k: statistics.median(v) for k, v in prounds.items()}
    return {"bench": "mamba_runtime", "machine": machine("cpu"), "model": label, "size": size,
            "export_s": round(export_s, 1), "call_s": call_s, "predict_s": predict_s,
            "parity_max_abs_over_scale": parity, "repeats": repeats,
            "native_scan_s": scan_s, "native_scan_share": scan_s / max(call_s["runtime_native"], 1e-12),
            "method": "medians of --repeats calls per variant after a warm-up, variants alternating over 3 "
                      "rounds (1 with --quick); random weights (seed 0), batch 1, fp32"}


def targets(result: dict) -> dict:
    c = result["call_s"]
    ratio = c["runtime_native"] / c["eager"]
    return {"native_over_eager": round(ratio, 3), "plain_over_eager": round(c["runtime_plain"] / c["eager"], 3),
            "plain_over_native": round(c["runtime_plain"] / c["runtime_native"], 3),
            "goal_native_within_1.5x_eager": ratio <= GOAL,
            "native_parity_ok": result["parity_max_abs_over_scale"]["runtime_native"] <= 1e-4}


def report(result: dict, args) -> str:
    c, p = result["call_s"], result["predict_s"]
    return (f"{result['model']} {result['size']}x{result['size']}: eager {c['eager'] * 1e3:.0f} ms, runtime "
            f"native-scan {c['runtime_native'] * 1e3:.0f} ms, plain model.onnx {c['runtime_plain'] * 1e3:.0f} ms "
            f"(predict {p['runtime_native'] * 1e3:.0f} / {p['runtime_plain'] * 1e3:.0f} ms); the C++ scans are "
            f"{result['native_scan_share']:.0%} of the native-scan call")
