"""tools/arm_check.sh: the C++ kernels built with tests/native/native_check.cpp and run
against its double-precision references, natively (every ISA level the CPU has) and
cross-compiled for aarch64 under qemu-user (generic and NEON).

Slow (it compiles every kernel twice: a few minutes on 2 cores), so CI's
`-m "not slow"` leaves it out; it also skips where the cross compiler or qemu is missing.
"""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "arm_check.sh"

pytestmark = pytest.mark.slow


def _need(tool: str, package: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} not found: install the Debian package {package}")


def _run(part: str, tmp_path: Path) -> str:
    env = dict(os.environ, ARM_CHECK_DIR=str(tmp_path / "build"))
    res = subprocess.run(["bash", str(SCRIPT), part], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=1800, check=False)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    assert "FAIL" not in out and "MISMATCH" not in out, out[-4000:]
    return out


def _isa_runs(out: str) -> list[str]:
    return re.findall(r"native_check: isa (\S+),", out)


def test_native_check_every_isa(tmp_path):
    _need("g++", "g++")
    out = _run("native", tmp_path)
    runs = _isa_runs(out)
    assert runs[:2] in (["generic", "sse2"], ["generic", "neon"]), out[-4000:]
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if re.search(r"\bavx2\b", flags) and re.search(r"\bfma\b", flags):
        assert "avx2+fma" in runs, out[-4000:]
    # every run reports every kernel
    assert out.count("depthwise_conv2d f32") == len(runs), out[-4000:]


def test_aarch64_check_under_qemu(tmp_path):
    _need("aarch64-linux-gnu-g++", "g++-aarch64-linux-gnu")
    _need("qemu-aarch64", "qemu-user")
    out = _run("aarch64", tmp_path)
    assert _isa_runs(out) == ["generic", "neon"], out[-4000:]
    assert out.count("selective_scan fwd f32") == 2, out[-4000:]
