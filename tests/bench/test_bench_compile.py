"""bench/bench_compile.py: --merge joins only runs measured alike; how a row is scored."""
from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_compile.py"


@pytest.fixture(scope="module")
def bc():
    spec = importlib.util.spec_from_file_location("bench_compile", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _args(models, size=512):
    return argparse.Namespace(models=models, size=size, device="cpu", repeats=3, quick=False)


def _write(bc, path, models, size=512, **changes):
    res = bc._result(_args(models, size), [{"model": m, "peers": {}, "effseg": {}} for m in models])
    res.update(changes)
    path.write_text(json.dumps(res))


def test_rows_of_other_models_are_kept_and_this_runs_replaced(bc, tmp_path):
    path = tmp_path / "compile-cpu.json"
    _write(bc, path, ["a", "b", "c"])
    kept = bc._kept_rows(path, _args(["b", "d"]))
    assert [r["model"] for r in kept] == ["a", "c"]
    assert bc._kept_rows(tmp_path / "none.json", _args(["b"])) == []


@pytest.mark.parametrize(("change", "named"), [({"size": 256}, "input"),
                                               ({"isa_caps": {"EFFSEG_SIMD": "avx2"}}, "isa_caps"),
                                               ({"machine": {"processor": "Other CPU"}}, "cpu")])
def test_a_run_measured_otherwise_is_refused(bc, tmp_path, change, named):
    path = tmp_path / "compile-cpu.json"
    size = change.pop("size", 512)
    _write(bc, path, ["a"], size=size, **change)
    with pytest.raises(SystemExit, match=rf"--merge: .* another .*{named}"):
        bc._kept_rows(path, _args(["b"]))


def test_wrapped_ratio_pairs_each_backend_with_its_peer(bc):
    assert bc.WRAPPED == {"eager": "eager", "inductor": "torch.compile(freezing)",
                          "onnxruntime": "onnxruntime", "openvino": "openvino"}
    assert set(bc.WRAPPED) == set(bc.EFFSEG_BACKENDS)


def test_score_races_only_peers_that_compute_the_model(bc):
    def t(ms, err):
        return {"median_ms": ms, "rel_err_vs_eager": err}

    row = {"model": "m", "peers": {"eager": t(100.0, 0.0), "onnxruntime": t(80.0, 6e-5),
                                   "openvino": t(50.0, 3e-2)},
           "effseg": {"onnxruntime": t(84.0, 6e-5), "eager": t(95.0, 1e-6)},
           "ratio_best_effseg_to_best_peer": 99.0, "target_met": True}
    bc.score(row)
    assert row["peers_off_by_more_than_tol"] == ["openvino"]
    assert row["ratio_best_effseg_to_best_peer"] == pytest.approx(84.0 / 80.0)
    assert row["target_met"] is False
    assert row["ratio_to_wrapped"] == pytest.approx({"onnxruntime": 84.0 / 80.0, "eager": 0.95})
    row["effseg"]["onnxruntime"]["median_ms"] = 70.0
    assert bc.score(row)["target_met"] is True  # 70 <= 0.9 x 80
    row["effseg"] = {}
    bc.score(row)
    assert "ratio_best_effseg_to_best_peer" not in row and "target_met" not in row


def test_rescore_updates_a_result_in_place(bc, tmp_path):
    path = tmp_path / "compile-cpu.json"
    row = {"model": "m", "peers": {"openvino": {"median_ms": 50.0, "rel_err_vs_eager": 3e-2},
                                   "onnxruntime": {"median_ms": 80.0, "rel_err_vs_eager": 0.0}},
           "effseg": {"onnxruntime": {"median_ms": 70.0, "rel_err_vs_eager": 0.0}},
           "ratio_best_effseg_to_best_peer": 1.4, "target_met": False}
    path.write_text(json.dumps({"bench": "compile", "target": "old", "results": [row], "targets": {"m": False}}))
    bc.rescore(path)
    res = json.loads(path.read_text())
    assert res["target"] == bc.TARGET_TEXT and res["targets"] == {"m": True}
    assert res["results"][0]["ratio_best_effseg_to_best_peer"] == pytest.approx(70 / 80)
    (tmp_path / "other.json").write_text(json.dumps({"bench": "train"}))
    with pytest.raises(SystemExit, match="not a bench_compile result"):
        bc.rescore(tmp_path / "other.json")


def test_inductor_is_not_run_under_the_onednn_cap(bc, monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert bc._inductor_off() == ""
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    why = bc._inductor_off()
    assert why.startswith("not run: ONEDNN_MAX_CPU_ISA=AVX2") and "Inductor" in why


def test_contenders_are_timed_in_the_same_rounds(bc, monkeypatch):
    """Every contender is called in every round, the order reversed each round, so the
    ratio of two rows comes from neighbouring calls; each row records its own samples."""
    monkeypatch.setattr(bc, "ROUND_BUDGET_S", 0.0)
    calls = []
    fns = {(g, lab): (lambda key=(g, lab): calls.append(key))
           for g, lab in (("peers", "onnxruntime"), ("effseg", "onnxruntime"), ("peers", "eager"))}
    row = {"peers": {"onnxruntime": {}, "eager": {}}, "effseg": {"onnxruntime": {}}}
    bc._time_together(row, fns, "cpu", repeats=4)
    keys = list(fns)
    # two calls per contender per round (the first takes the previous one's hand-over)
    want = []
    for r in range(4):
        for key in (keys if r % 2 == 0 else keys[::-1]):
            want += [key, key]
    assert calls == want
    for g, lab in keys:
        got = row[g][lab]
        assert got["repeats"] == 4 and got["min_ms"] <= got["median_ms"] <= got["max_ms"]
