"""Running code in a subprocess where torch cannot be imported, as on an edge device."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

BLOCK_TORCH = """
import sys
class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked for this test")
sys.meta_path.insert(0, _NoTorch())
"""


def run_without_torch(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """The child imports the effseg these tests import: the installed package in CI (with
    its effseg._C; -P keeps the checkout in the working folder off sys.path), else this
    checkout."""
    import effseg

    env = dict(os.environ)
    if ROOT in Path(effseg.__file__).resolve().parents:
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-P", "-c", BLOCK_TORCH + code], check=False, capture_output=True,
                          text=True, env=env, timeout=timeout)
