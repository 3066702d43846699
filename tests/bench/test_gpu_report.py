"""The README's GPU kernel tables come from bench/gpu_kernels.py's JSON (fixture:
tests/bench/data/gpu-kernels-fixture.json); dry runs never reach the README."""
import json
import shutil
from pathlib import Path

from effseg.bench.perf_report import load_sources, render

FIXTURE = Path(__file__).parent / "data" / "gpu-kernels-fixture.json"


def test_gpu_kernel_tables_from_fixture(tmp_path):
    shutil.copy(FIXTURE, tmp_path / "gpu-kernels-test-gpu.json")
    text = render(tmp_path)
    assert ("### Kernels on the GPU vs their anchors (Test GPU; "
            "`bench/results/gpu-kernels-test-gpu.json`)") in text
    # anchor time / effseg time, and the outputs' distance
    assert "| B4 D768 N16 L1024 | fp32 | 0.5 | torch_chunked | 4 | 8x | 2.0e-07 |" in text
    # one anchor's error is a row, not the end of the table; effseg's time still shows
    assert ("| B4 D768 N16 L1024 | bf16 | 0.25 | torch_chunked | "
            "error: RuntimeError: broken on purpose") in text
    assert "Not run: mamba_ssm (no mamba source)." in text
    assert "**winograd_conv2d**\n\nFailed: CompilationError: out of shared memory" in text
    assert "| ce+distance (training step) | 12.5 | +25% |" in text


def test_dry_run_files_are_not_reported(tmp_path):
    data = json.loads(FIXTURE.read_text())
    data.update(quick=True, dry_run=True)
    (tmp_path / "gpu-kernels-dry.json").write_text(json.dumps(data))
    assert load_sources(tmp_path)["gpu_kernels"] == {}
    assert "Kernels on the GPU" not in render(tmp_path)
