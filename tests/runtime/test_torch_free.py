"""effseg.runtime must import and work where torch cannot be imported (edge devices)."""
from no_torch import run_without_torch


def test_runtime_imports_without_torch():
    r = run_without_torch(
        "import effseg, effseg.runtime, sys\n"
        "assert not effseg.HAS_TORCH\n"
        "assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules), 'torch was loaded'\n"
        "print('ok', effseg.__version__)\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ok")


def test_blocker_really_blocks_torch():
    r = run_without_torch("import torch")
    assert r.returncode != 0 and "torch is blocked" in r.stderr
