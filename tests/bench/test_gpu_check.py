"""bench/gpu_check.sh, the one command for a short GPU loan: its dry run (CPU, Triton
interpreter, tiny sizes) goes through every stage and leaves each stage's JSON; a stage
stopped by its time limit keeps what it finished; stage 1's test selection stays small."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "gpu_check.sh"
KERNELS = ("selective_scan", "cross_selective_scan", "linear_attention", "depthwise_conv2d",
           "winograd_conv2d", "distance_transform", "losses")
pytestmark = pytest.mark.skipif(not SCRIPT.exists() or shutil.which("timeout") is None,
                                reason="needs the checkout's bench/ and coreutils timeout")


def _bench_module(name):
    spec = importlib.util.spec_from_file_location(f"_gc_{name}", ROOT / "bench" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(*args, timeout=240):
    env = dict(os.environ, PYTHON=sys.executable)
    env.pop("OUT", None)
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, env=env, timeout=timeout,
                          capture_output=True, text=True)


def test_dry_run_writes_every_stage(tmp_path):
    proc = _run("--dry-run", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert list(summary["stages"]) == ["tests", "kernels", "models"]
    for name, stage in summary["stages"].items():
        assert stage["ok"], (name, stage)

    tests = json.loads((tmp_path / "tests.json").read_text())
    assert tests["source"] == "junit" and tests["passed"] > 0 and tests["failed"] == 0
    assert tests["effseg_info"]["backends"]["triton"]["usable"]

    kernels = json.loads((tmp_path / "kernels.json").read_text())
    assert kernels["bench"] == "gpu_kernels" and kernels["quick"] is True
    assert kernels["machine"]["triton_interpret"] == "1"
    assert tuple(kernels["kernels"]) == KERNELS
    for name, entry in kernels["kernels"].items():
        assert "error" not in entry, (name, entry)
        if name == "losses":
            continue
        rows = entry["rows"]
        assert {r["dtype"] for r in rows} >= ({"bool"} if name == "distance_transform" else {"fp32", "fp16"})
        assert all("error" not in r and r["median_ms"] > 0 for r in rows), rows
        anchors = [r for r in rows if r["role"] == "anchor"]
        assert anchors, name
        # the interpreter runs the real kernels: their outputs must match the anchors
        for r in anchors:
            assert r["max_rel_diff_vs_effseg"] < (1e-5 if r["dtype"] == "fp32" else 2e-2), r

    models = json.loads((tmp_path / "models.json").read_text())
    assert models["bench"] == "model" and models["quick"] is True
    assert [r["backend"] for r in models["rows"]] == ["eager"]
    assert all(r["error"] is None for r in models["rows"]), models["rows"]
    assert "== gpu_check summary" in proc.stdout


def test_interrupted_kernel_stage_keeps_what_ran(tmp_path, monkeypatch):
    """SIGINT (the stage's timeout) during the second kernel: the first kernel's rows are on
    disk and the second is named as interrupted."""
    drv = _bench_module("gpu_kernels")
    from effseg.bench import gpu_kernels as G

    calls = []

    def fake(name, *args):
        calls.append(name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return {"rows": [{"case": "c", "dtype": "fp32", "impl": "effseg_triton", "role": "effseg",
                          "median_ms": 1.0}], "skipped": {}, "wall_s": 0.0}

    monkeypatch.setattr(G, "run_kernel", fake)
    out = tmp_path / "kernels.json"
    assert drv.main(["--dry-run", "--out", str(out)]) == 130
    data = json.loads(out.read_text())
    assert list(data["kernels"]) == list(KERNELS[:2])
    assert data["kernels"][KERNELS[0]]["rows"][0]["median_ms"] == 1.0
    assert data["interrupted"] == KERNELS[1]
    # --resume keeps the finished kernel and runs the rest
    calls.clear()
    monkeypatch.setattr(G, "run_kernel", lambda name, *a: {"rows": [], "wall_s": 0.0})
    data2 = dict(data)
    del data2["kernels"][KERNELS[1]]
    out.write_text(json.dumps(data2))
    assert drv.main(["--dry-run", "--out", str(out), "--resume"]) == 0
    assert list(json.loads(out.read_text())["kernels"]) == list(KERNELS)


def test_tests_json_falls_back_to_the_log_when_pytest_was_killed(tmp_path):
    util = _bench_module("gpu_check_util")
    (tmp_path / "tests.log").write_text(
        "tests/ops/test_a.py::test_triton_x[1] PASSED [ 10%]\n"
        "tests/ops/test_a.py::test_triton_y FAILED [ 20%]\n"
        "tests/ops/test_b.py::test_gpu_z SKIPPED (needs a CUDA device) [ 30%]\n")
    res = util.tests_json(tmp_path)
    assert (res["source"], res["complete"]) == ("log", False)
    assert (res["tests"], res["passed"], res["failed"], res["skipped"]) == (3, 1, 1, 1)
    assert res["failures"][0]["test"] == "tests/ops/test_a.py::test_triton_y"
    stage = util.record_stage(tmp_path, "tests", 124, 170.0, 170, ["tests.json", "tests.xml"])
    assert stage["timed_out"] and not stage["ok"] and stage["missing"] == ["tests.xml"]
    assert util.print_summary(tmp_path) == 0  # stage 1 ran tests: the check counts


def test_summary_fails_without_stage_one(tmp_path):
    util = _bench_module("gpu_check_util")
    util.record_stage(tmp_path, "kernels", 0, 1.0, 230, [])
    assert util.print_summary(tmp_path) == 1


def test_stage_one_selection_is_every_triton_kernel_and_small():
    proc = _run("--list-tests", timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    ids = [line for line in proc.stdout.splitlines() if "::" in line]
    files = {i.split("::")[0] for i in ids}
    for f in ("test_selective_scan.py", "test_cross_selective_scan.py", "test_linear_attention.py",
              "test_depthwise_conv2d.py", "test_winograd_conv2d.py", "test_distance_transform.py",
              "test_losses_gpu.py", "test_cudart.py"):
        assert any(p.endswith(f) for p in files), f
    # a couple of minutes of Triton compiles on the GPU, not the 12-minute suite
    assert 20 <= len(ids) <= 200, len(ids)
