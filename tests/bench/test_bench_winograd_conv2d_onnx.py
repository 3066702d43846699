"""bench/bench_winograd_conv2d_onnx.py: a --quick run's JSON (structure, every form
agreeing with F.conv2d; its timings mean nothing on a test machine and are not checked)."""
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_winograd_conv2d_onnx.py"


def test_quick_run_writes_every_form_per_engine(tmp_path):
    out = tmp_path / "w.json"
    subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out", str(out)], check=True,
                   capture_output=True, text=True, timeout=300)
    d = json.loads(out.read_text())
    assert d["bench"] == "winograd_conv2d_onnx" and d["results"]
    engines = {r["engine"] for r in d["results"]}
    assert "onnxruntime" in engines
    for r in d["results"]:
        assert set(r["median_ms"]) == {"plain", "graph_auto", "graph_f2", "graph_f4"}
        assert set(r["plain_over"]) == {"graph_auto", "graph_f2", "graph_f4"}
        assert all(e < 1e-4 for e in r["max_rel_err"].values()), r
        assert r["auto_tile"] in (2, 4) and r["rounds"] >= 3
