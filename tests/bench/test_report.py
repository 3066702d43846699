"""bench/report.py: the README's performance section is generated from bench/results/*.json,
and the committed README is what the committed JSON gives."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from effseg.bench.perf_report import END, START, load_sources, render, splice
from effseg.bench.report_table import _cell

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).parent / "data" / "model-bench-fixture.json"


def _scan(ms_cpp, ms_ref):
    rows = [{"length": 1024, "mode": "fwd", "backend": b, "median_ms": ms}
            for b, ms in (("ref", ms_ref), ("cpp", ms_cpp))]
    return {"op": "selective_scan", "device": "cpu", "machine": {"processor": "Test CPU",
            "torch_threads": 2}, "results": rows}


@pytest.fixture
def results(tmp_path):
    models = json.loads(FIXTURE.read_text())
    (tmp_path / "selective_scan-cpu.json").write_text(json.dumps(_scan(9.0, 90.0)))
    old = {"suite": "cpu", "kernels": {"selective_scan": _scan(5.0, 50.0)}, "models": None}
    new = {"suite": "cpu", "kernels": {"selective_scan": _scan(2.0, 100.0)}, "models": models}
    quick = {"suite": "cpu", "quick": True, "kernels": {"selective_scan": _scan(1.0, 1000.0)}}
    (tmp_path / "cpu-test-cpu-20250101.json").write_text(json.dumps(old))
    (tmp_path / "cpu-test-cpu-20260101.json").write_text(json.dumps(new))
    (tmp_path / "cpu-test-cpu-20270101-quick.json").write_text(json.dumps(quick))
    (tmp_path / "notes.json").write_text("[1, 2]")
    return tmp_path


def test_newest_suite_wins_and_quick_runs_are_ignored(results):
    src = load_sources(results)
    res, path = src["kernels"][("selective_scan", "cpu")]
    assert path == "bench/results/cpu-test-cpu-20260101.json"
    assert {r["backend"]: r["median_ms"] for r in res["results"]} == {"ref": 100.0, "cpp": 2.0}
    text = render(results)
    assert "| L=1024 fwd | cpp | 2 | ref | 100 | 50x |" in text
    assert "`bench/results/cpu-test-cpu-20260101.json`" in text
    assert "1000" not in text


def test_model_bench_table_from_fixture(results):
    text = render(results)
    rows = json.loads(FIXTURE.read_text())["rows"]
    eager = next(r for r in rows if r["backend"] == "eager")
    ms = _cell(eager, "median_ms", "ms")
    assert f"| bench_nets:tiny_net | 32 | 1 | fp32 | eager | {ms} |" in text
    assert "| broken | error: Broken: this backend is broken on purpose" in text
    assert "### `effseg bench`, CPU" in text


def test_no_model_bench_says_how_to_get_one(tmp_path):
    (tmp_path / "selective_scan-cpu.json").write_text(json.dumps(_scan(9.0, 90.0)))
    text = render(tmp_path)
    assert "No model-benchmark JSON" in text and "9 | ref | 90 | 10x" in text


def test_splice():
    doc = f"intro\n{START}\nold\n{END}\noutro\n"
    assert splice(doc, "new\n") == f"intro\n{START}\nnew\n{END}\noutro\n"
    with pytest.raises(ValueError, match="markers"):
        splice("no markers here", "x")


def _report_module(monkeypatch):
    path = ROOT / "bench" / "report.py"
    if not path.exists():
        pytest.skip("bench/report.py is not present (tests run outside the checkout)")
    # The script puts the checkout on sys.path; keep that out of the other tests.
    monkeypatch.setattr(sys, "path", list(sys.path))
    spec = importlib.util.spec_from_file_location("bench_report", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_report_check_and_write(results, tmp_path, monkeypatch):
    report = _report_module(monkeypatch)
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{START}\nstale\n{END}\n")
    args = ["--results", str(results), "--readme", str(readme)]
    assert report.main([*args, "--check"]) == 1
    assert report.main(args) == 0
    assert report.main([*args, "--check"]) == 0
    assert "| L=1024 fwd | cpp |" in readme.read_text()


def test_readme_performance_section_is_current():
    readme = ROOT / "README.md"
    if not readme.exists() or not (ROOT / "bench" / "results").is_dir():
        pytest.skip("README.md / bench/results are not present (tests run outside the checkout)")
    text = readme.read_text()
    assert START in text and END in text, "README has no perf markers: run python bench/report.py"
    assert splice(text, render(ROOT / "bench" / "results")) == text, \
        "README's performance section is stale: run python bench/report.py"


def test_compile_section(tmp_path):
    import json as _json

    from effseg.bench.perf_report import render

    def c(ms, err=1e-6):
        return {"median_ms": ms, "rel_err_vs_eager": err}

    data = {"bench": "compile", "device": "cpu", "machine": {"processor": "X", "torch_threads": 2},
            "input": {"batch": 1, "height": 64, "width": 64, "dtype": "float32"},
            "target": "best effseg backend <= 0.9x best peer",
            "results": [
                {"model": "a", "peers": {"eager": c(100.0), "onnxruntime": c(80.0)},
                 "effseg": {"inductor": c(60.0)}, "ratio_best_effseg_to_best_peer": 0.75,
                 "target_met": True, "ratio_to_wrapped": {"onnxruntime": 0.98, "openvino": 1.04}},
                {"model": "b", "peers": {"eager": c(100.0), "torch.compile": c(90.0, 2e-4),
                                         "openvino": c(50.0, 3e-2), "onnxruntime": c(70.0, float("nan"))},
                 "peers_off_by_more_than_tol": ["onnxruntime", "openvino"],
                 "effseg": {"eager": c(95.0)}, "without_parity": {"inductor": c(70.0, 2e-2)},
                 "ratio_best_effseg_to_best_peer": 95 / 90, "target_met": False}]}
    (tmp_path / "compile-cpu.json").write_text(_json.dumps(data))
    text = render(tmp_path)
    assert "| `a` | 100 | onnxruntime | 80 | inductor | 60 | 0.75x | met | openvino 1.04x |" in text
    assert "| `b` | 100 | torch.compile | 90 | eager | 95 | 1.06x | missed | — |" in text
    assert ("`b` torch.compile 2.0e-04; `b` openvino 3.0e-02; `b` onnxruntime nan; "
            "`b` effseg.inductor (unchecked) 2.0e-02") in text
    assert "not the target's yardstick (they compute something else): `b` onnxruntime (70 ms); `b` openvino (50 ms)." in text
    assert "`b` onnxruntime nan" in text  # a NaN output is listed, not passed over


def test_compile_sections_native_and_isa_capped(tmp_path):
    row = {"model": "m", "peers": {"eager": {"median_ms": 10.0}, "openvino": {"median_ms": 5.0}},
           "effseg": {"onnxruntime": {"median_ms": 4.0}}, "ratio_best_effseg_to_best_peer": 0.8,
           "target_met": True}
    base = {"bench": "compile", "device": "cpu", "input": {"height": 64, "width": 64, "batch": 1},
            "results": [row], "target": "best effseg backend <= 0.9x best peer"}
    native = dict(base, machine={"processor": "X", "torch_threads": 2, "isa": {"simd": "avx512f"}})
    capped = dict(base, machine={"processor": "X", "torch_threads": 2, "isa": {"simd": "avx2+fma"}},
                  isa_caps={"env": {"EFFSEG_SIMD": "avx2", "ATEN_CPU_CAPABILITY": "avx2"}})
    (tmp_path / "compile-cpu.json").write_text(json.dumps(native))
    (tmp_path / "compile-cpu-avx2.json").write_text(json.dumps(capped))
    text = render(tmp_path)
    assert "### effseg.compile vs peers, CPU avx512f (X, 2 threads; `bench/results/compile-cpu.json`)" in text
    assert "### effseg.compile vs peers, CPU, --isa avx2" in text and "compile-cpu-avx2.json" in text
    assert text.index("compile-cpu.json") < text.index("compile-cpu-avx2.json")
    assert text.count("| `m` | 10 | openvino | 5 | onnxruntime | 4 | 0.80x | met |") == 2
    assert "not measured" not in text
    (tmp_path / "compile-cpu.json").write_text(json.dumps(dict(native, models_planned=["m", "n2"])))
    assert "Planned but not measured (the run was stopped first): `n2`." in render(tmp_path)


def test_roofline_section(tmp_path):
    from effseg.bench.roofline import summarise

    nodes = [{"type": "Convolution", "ms": 30.0, "flops": 9e9}, {"type": "Reorder", "ms": 10.0, "flops": None}]
    row = {"model": "unetformer", "openvino_median_ms": 41.0, **summarise(nodes, 400.0)}
    res = {"bench": "roofline", "device": "cpu", "machine": {"processor": "Test CPU"},
           "input": "1x3x512x512 float32, batch 1", "gemm": {"n": 2048, "peak_gflops_per_s": 400.0},
           "results": [row, {"model": "cmunet", "skipped": "a scan net"}]}
    (tmp_path / "roofline-cpu.json").write_text(json.dumps(res))
    capped = dict(res, isa_caps={"env": {"EFFSEG_SIMD": "avx2"}}, results=[dict(row, model="capped")])
    (tmp_path / "roofline-cpu-avx2.json").write_text(json.dumps(capped))
    text = render(tmp_path)
    assert "Headroom left to a float32 engine" in text and "`bench/results/roofline-cpu.json`" in text
    # 9 GFLOP at 400 GFLOP/s = 22.5 ms; (22.5 + 10) / 40 and 22.5 / 40.
    assert "| `unetformer` | 41 | 75% | 300 (75%) | 0.81x | 0.56x |" in text
    assert "| `cmunet` |" in text and "skipped: a scan net" in text
    assert "`capped`" not in text  # one section, the native run
