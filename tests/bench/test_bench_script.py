"""effseg.bench.script, the scaffold of bench/bench_*.py and `effseg bench --op`."""
import json
import os
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest

from effseg.bench.script import (
    ISA_ENV,
    OPS,
    WAIT_VARS,
    isa_arg,
    isa_env,
    omp_wait,
    op_parser,
    result_path,
)

CHILD = """
import json, os, sys
from effseg.bench.script import reexec_with_raised_malloc
reexec_with_raised_malloc(sys.argv, "test")
print(json.dumps({"path": sys.path, "mmap": os.environ.get("MALLOC_MMAP_THRESHOLD_"),
                  "by": os.environ.get("EFFSEG_BENCH_MALLOC"), "argv": sys.argv[1:],
                  "wait": os.environ.get("OMP_WAIT_POLICY"), "spin": os.environ.get("GOMP_SPINCOUNT"),
                  "wait_by": os.environ.get("EFFSEG_BENCH_OMP_WAIT"),
                  "isa": {k: os.environ.get(k) for k in ("EFFSEG_SIMD", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")}}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the re-exec is for glibc's malloc")
def test_reexec_raises_thresholds_and_keeps_the_working_folder_off_sys_path(tmp_path):
    script = tmp_path / "scripts" / "child.py"
    script.parent.mkdir()
    script.write_text(CHILD)
    got = _run_child(tmp_path, script, {})
    assert got["mmap"] == "17179869184" and "re-executed" in got["by"] and got["argv"] == ["--quick"]
    on_path = {os.path.realpath(p or os.getcwd()) for p in got["path"]}
    assert str(tmp_path.resolve()) not in on_path  # the working folder
    assert str(script.parent.resolve()) not in on_path  # the script's folder
    # the wait policy stays the caller's (unset here): the eager peer runs as a plain import does
    assert got["wait"] is None and got["wait_by"] is None


def _run_child(tmp_path, script, extra: dict, args=("--quick",)) -> dict:
    isa_vars = {k for v in ISA_ENV.values() for k in v}
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MALLOC_") and k not in WAIT_VARS and not k.startswith("EFFSEG_BENCH_")
           and k not in isa_vars}
    env.update(extra)
    proc = subprocess.run([sys.executable, str(script), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the re-exec is for glibc's malloc")
def test_reexec_leaves_a_wait_policy_the_caller_chose(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    got = _run_child(tmp_path, script, {"GOMP_SPINCOUNT": "300000"})
    assert (got["wait"], got["spin"], got["wait_by"]) == (None, "300000", None)
    assert got["mmap"] == "17179869184"  # the malloc thresholds are still raised
    got = _run_child(tmp_path, script, {"MALLOC_MMAP_THRESHOLD_": "65536"})  # nothing to change: no restart
    assert (got["mmap"], got["by"], got["wait"]) == ("65536", None, None)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the re-exec is for glibc's malloc")
def test_isa_avx2_restarts_with_every_library_capped(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    got = _run_child(tmp_path, script, {}, args=("--isa", "avx2"))
    assert got["isa"] == {"EFFSEG_SIMD": "avx2", "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    assert got["argv"] == ["--isa", "avx2"]
    # --isa native (and no flag) caps nothing, even with the thresholds still to raise
    got = _run_child(tmp_path, script, {}, args=("--isa=native",))
    assert got["isa"] == dict.fromkeys(got["isa"]) and got["mmap"] == "17179869184"


def test_isa_flag_parsing_and_record(monkeypatch):
    assert isa_arg(["--quick", "--isa", "avx2"]) == "avx2"
    assert isa_arg(["--isa=avx2"]) == "avx2"
    assert isa_arg(["--quick", "--isa"]) == "native"  # argparse reports the missing value
    assert isa_arg([]) == "native"
    for k in ISA_ENV["avx2"]:
        monkeypatch.delenv(k, raising=False)
    assert isa_env()["uncapped"] is None
    monkeypatch.setenv("EFFSEG_SIMD", "avx2")
    rec = isa_env()
    assert rec["env"]["EFFSEG_SIMD"] == "avx2" and "ONNX Runtime" in rec["uncapped"]
    with pytest.raises(SystemExit):
        op_parser("losses").parse_args(["--isa", "avx9"])


def test_omp_wait_says_who_chose_the_policy(monkeypatch):
    for k in (*WAIT_VARS, "EFFSEG_BENCH_OMP_WAIT"):
        monkeypatch.delenv(k, raising=False)
    assert omp_wait()["set_by"] is None
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert omp_wait() == {"env": {"OMP_WAIT_POLICY": "ACTIVE", "GOMP_SPINCOUNT": None, "KMP_BLOCKTIME": None},
                          "set_by": "environment"}


def test_result_names_say_device_threads_and_quick(tmp_path):
    def args(**kw):
        return Namespace(**{"device": "cpu", "threads": None, "quick": False, "out": None, **kw})

    assert result_path(tmp_path, "losses", args()) == tmp_path / "losses-cpu.json"
    assert result_path(tmp_path, "losses", args(threads=2, quick=True)) == tmp_path / "losses-cpu-t2-quick.json"
    assert result_path(tmp_path, "losses", args(out="x.json")) == Path("x.json")
    assert result_path(tmp_path, "losses", args(isa="avx2", quick=True)) == tmp_path / "losses-cpu-avx2-quick.json"
    assert result_path(tmp_path, "losses", args(isa="native")) == tmp_path / "losses-cpu.json"


@pytest.mark.parametrize("op", OPS)
def test_every_op_takes_the_common_flags(op):
    args = op_parser(op).parse_args(["--device", "cpu", "--quick", "--repeats", "2", "--threads", "1"])
    assert (args.device, args.quick, args.repeats, args.threads, args.out) == ("cpu", True, 2, 1, None)


def test_child_python_imports_this_effseg_not_one_in_the_working_folder(tmp_path):
    import subprocess

    import effseg
    from effseg.bench.script import child_python

    planted = tmp_path / "effseg"
    planted.mkdir()
    (planted / "__init__.py").write_text(f"open({str(tmp_path / 'marker')!r}, 'w').close()\n")
    argv, env = child_python()
    out = subprocess.run([*argv, "-c", "import effseg; print(effseg.__file__)"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == effseg.__file__ and not (tmp_path / "marker").exists()
