"""bench/bench_contention.py (effseg/bench/contention.py): the pure parts, and the JSON
of a brief --quick run (its keys and structure; its timings mean nothing on a test
machine and are not checked)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from effseg.bench import contention as C

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_contention.py"


def test_policy_env_clears_inherited_waiting_settings_and_applies_its_own():
    base = {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "1", "EFFSEG_ORT_SPINNING": "0", "PATH": "/bin"}
    spin = C.policy_env("spin", base)
    assert "OMP_WAIT_POLICY" not in spin and "GOMP_SPINCOUNT" not in spin
    assert (spin["EFFSEG_ADAPTIVE_THREADS"], spin["EFFSEG_ORT_SPINNING"], spin["PATH"]) == ("0", "1", "/bin")
    default = C.policy_env("default", base)
    assert not set(C.SETTINGS) & set(default) and default["EFFSEG_BENCH_NO_REEXEC"] == "1"
    assert C.policy_env("passive", base)["OMP_WAIT_POLICY"] == "PASSIVE"
    with pytest.raises(ValueError, match="policy must be one of spin, default, passive"):
        C.policy_env("lazy", base)


def test_policy_and_row_lists_are_checked():
    assert C.parse_policies("passive, spin,passive") == ["passive", "spin"]
    assert C.parse_rows("ort_plain") == ["ort_plain"]
    with pytest.raises(ValueError, match="--policies must be a comma-separated list"):
        C.parse_policies("spin,lazy")
    with pytest.raises(ValueError, match="--rows must be a comma-separated list"):
        C.parse_rows(",")


def test_openvino_rows_follow_whether_openvino_imports(monkeypatch):
    monkeypatch.setattr(C, "openvino_missing", lambda: None)
    assert C.parse_rows(None) == list(C.ROWS)
    monkeypatch.setattr(C, "openvino_missing", lambda: "openvino does not import (test)")
    assert C.parse_rows(None) == [r for r in C.ROWS if r not in C.OPENVINO_ROWS]
    assert C.parse_rows("ort_plain") == ["ort_plain"]
    with pytest.raises(ValueError, match=r"--rows openvino_plain: openvino does not import \(test\)"):
        C.parse_rows("ort_plain,openvino_plain")


def test_targets_name_the_worst_row_against_the_fair_share():
    rows = [{"row": "a", "slowdown": 1.9}, {"row": "b", "slowdown": C.FAIR_SHARE_LIMIT + 0.1}]
    t = C.targets({"spin": {"rows": rows}, "passive": {"rows": rows[:1]}})
    assert t["spin"] == {"worst_row": "b", "worst_slowdown": C.FAIR_SHARE_LIMIT + 0.1, "fair_share_met": False}
    assert t["passive"]["fair_share_met"] is True and t["passive"]["worst_row"] == "a"


def test_quick_run_writes_both_policies_side_by_side(tmp_path, require_backend):
    require_backend("cpp")
    out = tmp_path / "contention.json"
    rows = "depthwise_conv2d_k7,distance_transform"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--repeats", "1", "--policies", "spin,passive",
                           "--rows", rows, "--out", str(out)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["bench"] == "contention" and res["quick"] is True and res["rows"] == rows.split(",")
    assert list(res["policies"]) == ["spin", "passive"] and set(res["targets"]) == {"spin", "passive"}
    assert res["machine"]["isa"]["simd"] and res["allocator"]["env"]["MALLOC_MMAP_THRESHOLD_"]
    spin, passive = res["policies"]["spin"], res["policies"]["passive"]
    assert spin["env"]["EFFSEG_ADAPTIVE_THREADS"] == "0" and spin["env"]["OMP_WAIT_POLICY"] is None
    assert passive["env"]["OMP_WAIT_POLICY"] == "PASSIVE" and passive["threads"]["effseg_adaptive"] is True
    assert spin["threads"]["effseg_adaptive"] is False
    assert spin["threads"]["effseg_team"] == {"quiet": spin["threads"]["effseg"], "busy": spin["threads"]["effseg"]}
    assert set(passive["threads"]["effseg_team"]) == {"quiet", "busy"}
    for pol in (spin, passive):
        assert [r["row"] for r in pol["rows"]] == rows.split(",")
        for r in pol["rows"]:
            assert r["quiet_ms"] > 0 and r["busy_ms"] > 0
            assert r["slowdown"] == pytest.approx(r["busy_ms"] / r["quiet_ms"])
    assert "depthwise_conv2d_k7" in proc.stdout and "quiet -> busy" in proc.stdout
