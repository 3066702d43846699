"""bench/bench_int8.py: the agreement figures, and the JSON of a --quick run (structure only,
no timing asserted)."""
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime.quantization")

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_int8.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_int8", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_int8"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_agreement_counts_pixels_iou_and_the_worst_logit(bench):
    ref = np.zeros((1, 2, 2, 2), np.float32)
    ref[0, 1, 0, :] = 1.0  # class 1 on the top row, class 0 below
    out = ref.copy()
    out[0, 1, 1, 1] = 2.0  # one pixel flips to class 1, with an error of 2
    a = bench.agreement([ref], [out])
    assert a["pixel_agreement"] == 0.75
    # class 0: tp 1, union 2; class 1: tp 2, union 3
    assert a["miou_vs_fp32"] == pytest.approx((1 / 2 + 2 / 3) / 2, abs=1e-4)
    assert a["max_abs_logit_error"] == 2.0 and a["max_abs_logit"] == 1.0


def test_bad_arguments_are_named(bench, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--models", "nosuchnet"])
    assert "--models: unknown ['nosuchnet']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--rounds", "0"])
    assert "--rounds >= 1" in capsys.readouterr().err


def test_quick_run_writes_a_row_per_placement(bench, tmp_path):
    out = tmp_path / "int8.json"
    assert bench.main(["--quick", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["bench"] == "int8" and result["input"]["height"] == 64 and "cpu_flags" in result
    (row,) = result["rows"]
    assert "error" not in row, row.get("error")
    assert row["model"] == "unetformer-dw" and row["fp32_ms"] > 0
    for placement in ("cpu", "tensorrt"):
        r = row[f"int8_{placement}"]
        assert {"ms", "speedup", "pixel_agreement", "miou_vs_fp32", "max_abs_logit_error", "integer_kernels",
                "fp32_conv_matmul"} <= set(r)
        assert 0.0 <= r["pixel_agreement"] <= 1.0
    # The placements differ where it matters: ORT runs the cpu one in integers.
    cpu, trt = row["int8_cpu"], row["int8_tensorrt"]
    assert cpu["integer_kernels"] > trt["integer_kernels"] and cpu["fp32_conv_matmul"] < trt["fp32_conv_matmul"]
    assert row["verdict"] in ("int8 pays", "about even", "no gain: ship fp32")
