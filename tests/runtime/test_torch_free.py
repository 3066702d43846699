"""effseg.runtime must import and work where torch cannot be imported (edge devices)."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A meta-path finder that refuses torch, as on a device where it is not installed.
_BLOCK_TORCH = """
import sys
class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked for this test")
sys.meta_path.insert(0, _NoTorch())
"""


def run_without_torch(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-c", _BLOCK_TORCH + code], check=False, capture_output=True, text=True,
                          env=env, timeout=120)


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
