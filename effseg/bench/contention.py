"""Speed under load: each row timed on a quiet machine, then again while one busy process
(a Python loop) competes for the cores, and the slowdown between the two; once per
waiting policy, each policy in a fresh process because OpenMP reads its wait policy when
it loads. With one competitor on a 2-core machine a row's fair share is ~2x.

Policies (the environment each worker process starts with):
  spin     before: the runtimes' defaults (libgomp spins ~300000 pauses before sleeping),
           effseg's kernels with a fixed team, effseg's ORT sessions spinning
  default  what a user gets now without setting anything: effseg's kernels adapt their
           team, effseg's ORT sessions wait passively; torch's OpenMP pool still spins
  passive  default plus OMP_WAIT_POLICY=PASSIVE: what `effseg bench` and bench/ run with

Rows: effseg's C++ ops (depthwise conv k7, selective scan, distance transform), a zoo
model through effseg.compile (onnxruntime and eager backends), the same model exported
and run by a plain onnxruntime.InferenceSession (ORT's own defaults, spinning), and the
model in plain torch eager; where openvino imports, also effseg.compile's openvino
backend and a plain OpenVINO compiled model (its defaults but f32, as the other rows
compute). OpenVINO's threads are TBB's, whose waiting no OpenMP setting touches.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from .script import child_python

POLICIES = {
    "spin": {"EFFSEG_ADAPTIVE_THREADS": "0", "EFFSEG_ORT_SPINNING": "1"},
    "default": {},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
}
# Cleared before a policy's own settings apply, so that the caller's environment (or the
# bench re-exec's OMP_WAIT_POLICY) does not leak into "spin" and "default".
SETTINGS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "EFFSEG_ADAPTIVE_THREADS",
            "EFFSEG_ORT_SPINNING")
CLEARED = (*SETTINGS, "EFFSEG_BENCH_OMP_WAIT")
ROWS = ("depthwise_conv2d_k7", "selective_scan", "distance_transform", "compile_onnxruntime",
        "compile_eager", "ort_plain", "torch_eager", "compile_openvino", "openvino_plain")
OPENVINO_ROWS = ("compile_openvino", "openvino_plain")
# "about the fair share": one competitor halves the cores on 2; a little room for noise.
FAIR_SHARE_LIMIT = 2.5
BUSY_LOOP = "while True: pass"


def shapes(quick: bool) -> dict:
    if quick:
        return {"dw": (1, 16, 64, 64), "scan": (1, 32, 16, 256), "edt": (2, 128, 128), "model_hw": 64}
    return {"dw": (1, 64, 128, 128), "scan": (1, 256, 16, 1024), "edt": (4, 512, 512), "model_hw": 256}


def parse_policies(text: str) -> list[str]:
    names = [p.strip() for p in text.split(",") if p.strip()]
    bad = [p for p in names if p not in POLICIES]
    if bad or not names:
        raise ValueError(f"--policies must be a comma-separated list of {', '.join(POLICIES)}; got {text!r}")
    return list(dict.fromkeys(names))


def openvino_missing() -> str | None:
    """Why the OpenVINO rows cannot run here (None: they can)."""
    try:
        import openvino  # noqa: F401
    except ImportError as exc:
        return f"openvino does not import ({exc}); pip install openvino"
    return None


def parse_rows(text: str | None) -> list[str]:
    """The rows asked for; by default every row, less the OpenVINO ones where openvino
    does not import (asked for by name there, they are an error naming why)."""
    if text is None:
        return [r for r in ROWS if r not in OPENVINO_ROWS or openvino_missing() is None]
    names = [r.strip() for r in text.split(",") if r.strip()]
    bad = [r for r in names if r not in ROWS]
    if bad or not names:
        raise ValueError(f"--rows must be a comma-separated list of {', '.join(ROWS)}; got {text!r}")
    why = openvino_missing()
    if why and set(names) & set(OPENVINO_ROWS):
        raise ValueError(f"--rows {','.join(r for r in names if r in OPENVINO_ROWS)}: {why}")
    return list(dict.fromkeys(names))


def policy_env(policy: str, base: dict | None = None) -> dict:
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in CLEARED}
    env.update(POLICIES[policy], EFFSEG_BENCH_NO_REEXEC="1")
    return env


def _callables(rows: list[str], quick: bool, model_name: str, tmp: Path) -> dict:
    import torch

    import effseg
    from effseg.ops.depthwise_conv2d import depthwise_conv2d
    from effseg.ops.distance_transform import distance_transform
    from effseg.ops.selective_scan import selective_scan

    s = shapes(quick)
    g = torch.Generator().manual_seed(0)
    fns = {}
    if "depthwise_conv2d_k7" in rows:
        x = torch.randn(s["dw"], generator=g)
        w = torch.randn(s["dw"][1], 1, 7, 7, generator=g)
        fns["depthwise_conv2d_k7"] = lambda: depthwise_conv2d(x, w, padding=3, backend="cpp")
    if "selective_scan" in rows:
        b, d, n, L = s["scan"]
        u, dt = torch.randn(b, d, L, generator=g), torch.rand(b, d, L, generator=g)
        A = -torch.rand(d, n, generator=g)
        B, C = torch.randn(b, n, L, generator=g), torch.randn(b, n, L, generator=g)
        fns["selective_scan"] = lambda: selective_scan(u, dt, A, B, C, backend="cpp")
    if "distance_transform" in rows:
        m = torch.rand(s["edt"], generator=g) > 0.05
        fns["distance_transform"] = lambda: distance_transform(m, backend="cpp")
    model_rows = {"compile_onnxruntime", "compile_eager", "ort_plain", "torch_eager", *OPENVINO_ROWS} & set(rows)
    if model_rows:
        model = effseg.create_model(model_name).eval()
        shape = (1, 3, s["model_hw"], s["model_hw"])
        xm = torch.randn(shape, generator=g)
        for backend in ("onnxruntime", "eager", "openvino"):
            if f"compile_{backend}" in rows:
                f = effseg.compile(model, input_shape=shape, backend=backend)
                fns[f"compile_{backend}"] = lambda f=f: f(xm)
        path = tmp / "model.onnx"
        if {"ort_plain", "openvino_plain"} & set(rows):
            from effseg.export import to_onnx

            to_onnx(model, path, input_shape=shape)
        if "ort_plain" in rows:
            import onnxruntime as ort

            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])  # ORT's own defaults
            name, xn = sess.get_inputs()[0].name, xm.numpy()
            fns["ort_plain"] = lambda: sess.run(None, {name: xn})
        if "openvino_plain" in rows:
            import openvino as ov

            compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
            request, xo = compiled.create_infer_request(), xm.numpy()
            fns["openvino_plain"] = lambda: request.infer({0: xo})
        if "torch_eager" in rows:
            def eager():
                with torch.no_grad():
                    model(xm)
            fns["torch_eager"] = eager
    return {r: fns[r] for r in rows}


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm-up: first-call allocations and lazy initialisation stay out of both phases
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _load() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def worker(policy: str, rows: list[str], quick: bool, repeats: int, model_name: str) -> dict:
    """One policy's rows, quiet then busy, in this process (started with policy_env)."""
    import torch

    from .. import _native

    with tempfile.TemporaryDirectory() as tmp:
        fns = _callables(rows, quick, model_name, Path(tmp))
        c = _native.require() if _native.available() else None
        team = {}  # the team effseg's kernels chose at the end of each phase (adapting shows here)
        quiet_load = _load()
        quiet = {r: _median_ms(f, repeats) for r, f in fns.items()}
        team["quiet"] = c.team_threads() if c else None
        busy_proc = subprocess.Popen([*child_python()[0], "-c", BUSY_LOOP])
        try:
            time.sleep(0.2)  # let the competitor start spinning
            busy_load = _load()
            busy = {r: _median_ms(f, repeats) for r, f in fns.items()}
            team["busy"] = c.team_threads() if c else None
        finally:
            busy_proc.kill()
            busy_proc.wait()
    out = [{"row": r, "quiet_ms": quiet[r], "busy_ms": busy[r], "slowdown": busy[r] / quiet[r]} for r in rows]
    return {"policy": policy, "env": {k: os.environ.get(k) for k in SETTINGS}, "rows": out,
            "threads": {"torch": torch.get_num_threads(), "effseg": c.get_num_threads() if c else None,
                        "effseg_adaptive": c.adaptive_threads() if c else None, "effseg_team": team},
            "loadavg": {"quiet": quiet_load, "busy": busy_load}}


def run_policy(policy: str, rows: list[str], quick: bool, repeats: int, model_name: str,
               timeout: float | None = None) -> dict:
    """worker() in a fresh interpreter with the policy's environment."""
    code = ("import json, sys; from effseg.bench.contention import worker; "
            "print(json.dumps(worker(*json.loads(sys.argv[1]))))")
    arg = json.dumps([policy, rows, quick, repeats, model_name])
    argv, env = child_python(policy_env(policy))
    proc = subprocess.run([*argv, "-c", code, arg], env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"the {policy} worker failed (exit {proc.returncode}): {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def targets(policies: dict) -> dict:
    """Per policy: the worst slowdown and whether every row stayed within about the fair share."""
    out = {}
    for name, res in policies.items():
        worst = max(res["rows"], key=lambda r: r["slowdown"])
        out[name] = {"worst_row": worst["row"], "worst_slowdown": worst["slowdown"],
                     "fair_share_met": worst["slowdown"] <= FAIR_SHARE_LIMIT}
    return out


def report(result: dict) -> str:
    names = list(result["policies"])
    lines = ["row".ljust(22) + "".join(f"{n:>26}" for n in names),
             " " * 22 + "".join(f"{'quiet -> busy ms (x)':>26}" for _ in names)]
    for i, row in enumerate(result["rows"]):
        cells = []
        for n in names:
            r = result["policies"][n]["rows"][i]
            cells.append(f"{r['quiet_ms']:.2f} -> {r['busy_ms']:.2f} ({r['slowdown']:.1f}x)".rjust(26))
        lines.append(row.ljust(22) + "".join(cells))
    return "\n".join(lines)
