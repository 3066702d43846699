"""`effseg info` and the packaging: what is installed must be what the tests exercise."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import effseg
from effseg.cli import main

BACKENDS = {"cpp", "triton", "cuda", "onnx", "onnxruntime", "onnxscript", "tensorrt"}


def test_backend_report_has_every_backend_with_a_reason():
    report = effseg.backend_report()
    assert set(report["backends"]) == BACKENDS
    for name, b in report["backends"].items():
        assert isinstance(b["usable"], bool)
        assert b["detail"], f"{name} has no reason"


def test_info_json_cli(capsys):
    assert main(["info", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["effseg"] == effseg.__version__


def test_info_console_script_runs():
    exe = Path(sys.executable).parent / "effseg"
    if not exe.exists():
        pytest.skip(f"the console script is not installed next to {sys.executable} (source checkout)")
    out = subprocess.run([str(exe), "info"], capture_output=True, text=True, check=True).stdout
    assert "backends:" in out and "cpp" in out


def test_missing_module_is_reported_with_install_hint():
    from effseg.info import _module_status

    ok, why = _module_status("effseg_no_such_module", "export")
    assert not ok and "effseg[export]" in why


@pytest.mark.skipif(not os.environ.get("EFFSEG_REQUIRE_INSTALLED"),
                    reason="EFFSEG_REQUIRE_INSTALLED unset: running from a source checkout")
def test_installed_wheel_carries_native_module_and_kernels():
    """CI installs non-editably: effseg, effseg._C and effseg.kernels come from site-packages."""
    import importlib

    pkg = Path(effseg.__file__).parent
    assert "site-packages" in str(pkg), pkg
    from effseg import _native

    assert _native.available(), _native.reason
    kernels = importlib.import_module("effseg.kernels.selective_scan")
    assert Path(kernels.__file__).parent == pkg / "kernels"
