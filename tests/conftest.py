import os
import sys
from pathlib import Path

import pytest
import torch

# Triton kernels run on CPU tensors through the interpreter when no GPU is present.
# It must be chosen before anything imports triton.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# effseg.compile's autotune builds and times every candidate and files the decision under
# ~/.cache: across the suite's hundreds of compiles that is minutes of CI and decisions
# that vary with the load. Off here; tests/compile/test_autotune.py turns it on with an
# explicit autotune= argument (which wins over the variable) and a temporary folder.
os.environ.setdefault("EFFSEG_AUTOTUNE", "0")

# Shared test helpers live in tests/helpers. Only that folder goes on sys.path: the
# repository root must not, or the source tree would shadow the installed effseg.
sys.path.insert(0, str(Path(__file__).parent / "helpers"))


def _backend_usable(name: str) -> tuple[bool, str]:
    from effseg import _native, _triton

    if name == "cpp":
        return _native.available(), _native.reason
    if name == "triton":
        return _triton.status()
    return True, ""


@pytest.fixture
def require_backend():
    """Skip (naming what is missing) when a backend cannot run in this environment."""
    def check(name):
        ok, why = _backend_usable(name)
        if not ok:
            if os.environ.get("EFFSEG_REQUIRE_BACKENDS", "") and name in os.environ["EFFSEG_REQUIRE_BACKENDS"].split(","):
                pytest.fail(f"backend {name} required by EFFSEG_REQUIRE_BACKENDS but unusable: {why}")
            pytest.skip(f"backend {name} unusable here: {why}")
    return check
