"""Finds Triton and the kernels shipped in the wheel (effseg/kernels) or the checkout."""
from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path


def interpreting() -> bool:
    """Triton's interpreter runs kernels on CPU tensors (set before importing triton)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def status() -> tuple[bool, str]:
    """(usable, reason) for the Triton backend in this process."""
    try:
        import triton  # noqa: F401
    except ImportError as exc:
        return False, f"triton is not installed ({exc}); pip install 'effseg[triton]'"
    import torch

    if interpreting():
        return True, f"triton {triton.__version__} in interpreter mode (TRITON_INTERPRET=1, CPU tensors)"
    if not torch.cuda.is_available():
        return False, (f"triton {triton.__version__} is installed but no CUDA device is visible "
                       "(TRITON_INTERPRET=1 runs its kernels on CPU tensors, slowly, for tests)")
    return True, f"triton {triton.__version__} on {torch.cuda.get_device_name()}"


def load(name: str):
    """Import the Triton kernel module `name` from the wheel, else from the checkout."""
    try:
        return importlib.import_module(f"effseg.kernels.{name}")
    except ModuleNotFoundError:
        root = Path(__file__).resolve().parent.parent
        if (root / "kernels" / f"{name}.py").exists() and str(root) not in sys.path:
            sys.path.insert(0, str(root))
        return importlib.import_module(f"kernels.{name}")
