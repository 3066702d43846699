"""bench/bench_mamba_runtime.py --quick: the three variants run, agree, and land in the
JSON with their ratios (the plumbing; the numbers come from the lead's full run)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from effseg.runtime import native_scan

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_mamba_runtime.py"


@pytest.mark.skipif(not native_scan.available(), reason=f"the native-scan form needs effseg._C: {native_scan.reason()}")
def test_quick_run_writes_all_three_variants(tmp_path):
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out", str(out)], capture_output=True,
                          text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["quick"] is True and r["model"] == "tiny-ss2d" and r["size"] == 32
    assert set(r["call_s"]) == {"eager", "runtime_native", "runtime_plain"}
    assert all(v > 0 for v in [*r["call_s"].values(), *r["predict_s"].values()])
    assert r["targets"]["native_parity_ok"] is True
    assert r["parity_max_abs_over_scale"]["runtime_plain"] <= 1e-4
    c = r["call_s"]
    assert r["targets"]["native_over_eager"] == pytest.approx(c["runtime_native"] / c["eager"], abs=1e-3)
    assert "native-scan" in proc.stdout and 0 < r["native_scan_share"] < 1
