"""bench/bench_compile.py --merge: a long run done in parts joins only runs measured alike."""
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
