"""The JSON plumbing of bench/gpu_check.sh: standard library only, so that it works
even when the build of effseg failed on the GPU machine.

    python bench/gpu_check_util.py tests OUT         # junit XML (or the -v log) -> tests.json
    python bench/gpu_check_util.py stage OUT NAME RC WALL BUDGET FILE...   # -> summary.json
    python bench/gpu_check_util.py summary OUT       # print summary.json; rc 0 iff tests ran
"""
from __future__ import annotations

import json
import os
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

_VERBOSE = re.compile(r"^(\S+::\S+) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)")


def tests_json(out: Path) -> dict:
    """Counts and failures of stage 1's pytest. From the junit XML when pytest got to write
    it, else from the -v log, so that a run stopped by its time limit still counts."""
    xml, log = out / "tests.xml", out / "tests.log"
    res: dict = {"source": None, "tests": 0, "passed": 0, "failed": 0, "errors": 0,
                 "skipped": 0, "failures": [], "complete": False}
    if xml.exists():
        try:
            root = ET.parse(xml).getroot()
        except ET.ParseError:
            root = None
        if root is not None:
            suite = root if root.tag == "testsuite" else root.find("testsuite")
            res["source"], res["complete"] = "junit", True
            for case in suite.iter("testcase"):
                name = f"{case.get('classname')}::{case.get('name')}"
                res["tests"] += 1
                bad = case.find("failure") if case.find("failure") is not None else case.find("error")
                if bad is not None:
                    res["failed" if bad.tag == "failure" else "errors"] += 1
                    res["failures"].append({"test": name, "message": (bad.get("message") or "")[:500]})
                elif case.find("skipped") is not None:
                    res["skipped"] += 1
                else:
                    res["passed"] += 1
            res["wall_s"] = float(suite.get("time") or 0)
    if res["source"] is None and log.exists():
        res["source"] = "log"
        for line in log.read_text(errors="replace").splitlines():
            m = _VERBOSE.match(line)
            if m:
                res["tests"] += 1
                key = {"PASSED": "passed", "XPASS": "passed", "FAILED": "failed",
                       "ERROR": "errors"}.get(m.group(2), "skipped")
                res[key] += 1
                if key in ("failed", "errors"):
                    res["failures"].append({"test": m.group(1), "message": ""})
    if os.environ.get("BUILD_RC"):
        res["build_rc"] = int(os.environ["BUILD_RC"])
    info = out / "info.json"
    if info.exists():
        try:
            res["effseg_info"] = json.loads(info.read_text())
        except ValueError:
            pass
    (out / "tests.json").write_text(json.dumps(res, indent=1) + "\n")
    return res


def record_stage(out: Path, name: str, rc: int, wall: float, budget: float, files: list[str]) -> dict:
    """Add one stage to summary.json (rewritten after every stage, so that a check cut off
    later still says what the finished stages did)."""
    path = out / "summary.json"
    summary = json.loads(path.read_text()) if path.exists() else {"stages": {}}
    present = [f for f in files if (out / f).exists()]
    stage = {"rc": rc, "wall_s": round(wall, 1), "budget_s": budget,
             "timed_out": rc in (124, 130, 137), "files": present,
             "missing": [f for f in files if f not in present]}
    stage.update(_stage_facts(out, name))
    stage["ok"] = rc == 0 and not stage["missing"] and not stage.get("failures")
    summary["stages"][name] = stage
    path.write_text(json.dumps(summary, indent=1) + "\n")
    return stage


def _stage_facts(out: Path, name: str) -> dict:
    """The few numbers worth seeing in the summary without opening the stage's files."""
    def load(f):
        try:
            return json.loads((out / f).read_text())
        except (OSError, ValueError):
            return None
    if name == "tests" and (t := load("tests.json")):
        return {k: t[k] for k in ("tests", "passed", "failed", "errors", "skipped")} | \
            {"failures": len(t["failures"])}
    if name == "kernels" and (k := load("kernels.json")):
        ks = k.get("kernels", {})
        return {"kernels_done": sorted(ks), "kernel_errors": sorted(n for n, e in ks.items() if "error" in e),
                "row_errors": sum(1 for e in ks.values() for r in e.get("rows", []) if "error" in r)}
    if name == "models" and (m := load("models.json")):
        rows = m.get("rows", [])
        return {"rows": len(rows), "row_errors": sum(1 for r in rows if r.get("error")),
                "models_done": sorted({r["model"] for r in rows})}
    return {}


def print_summary(out: Path) -> int:
    path = out / "summary.json"
    summary = json.loads(path.read_text()) if path.exists() else {"stages": {}}
    print(f"\n== gpu_check summary ({out}) ==")
    for name, s in summary["stages"].items():
        facts = {k: v for k, v in s.items() if k not in ("files", "missing", "budget_s", "wall_s", "rc")}
        print(f"{name:8s} rc {s['rc']:3d}  {s['wall_s']:6.1f} s of {s['budget_s']:g}  "
              f"files {', '.join(s['files']) or '-'}  {json.dumps(facts)}")
    tests = summary["stages"].get("tests", {})
    return 0 if tests.get("tests", 0) > 0 else 1


def main(argv: list[str]) -> int:
    cmd, out = argv[0], Path(argv[1])
    if cmd == "tests":
        tests_json(out)
    elif cmd == "stage":
        record_stage(out, argv[2], int(argv[3]), float(argv[4]), float(argv[5]), argv[6:])
    elif cmd == "summary":
        return print_summary(out)
    else:
        raise SystemExit(f"unknown command {cmd!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
