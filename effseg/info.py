"""What this installation can run: versions, devices and each backend's status."""
from __future__ import annotations

import importlib
import platform


def _module_status(name: str, extra: str) -> tuple[bool, str]:
    try:
        mod = importlib.import_module(name)
    except Exception as exc:  # ImportError, or a broken binary wheel
        return False, f"{name} does not import ({type(exc).__name__}: {exc}); pip install 'effseg[{extra}]'"
    return True, f"{name} {getattr(mod, '__version__', '?')}"


def backend_report() -> dict:
    """A dict describing versions, devices and backend availability, each with a reason."""
    import torch

    from . import _native, _triton
    from ._version import __version__

    backends = {}
    if _native.available():
        bi = dict(_native._C.build_info())
        backends["cpp"] = (True, "effseg._C built with " + ", ".join(f"{k}={v}" for k, v in bi.items()))
    else:
        backends["cpp"] = (False, _native.reason)
    backends["triton"] = _triton.status()
    if torch.cuda.is_available():
        backends["cuda"] = (True, f"{torch.cuda.device_count()} device(s): {torch.cuda.get_device_name()}")
    else:
        backends["cuda"] = (False, "torch sees no CUDA device" + (
            "" if torch.version.cuda else " (this torch is a CPU-only build)"))
    backends["onnx"] = _module_status("onnx", "export")
    backends["onnxruntime"] = _module_status("onnxruntime", "export")
    backends["onnxscript"] = _module_status("onnxscript", "export")
    backends["tensorrt"] = _module_status("tensorrt", "trt")
    return {
        "effseg": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "backends": {k: {"usable": ok, "detail": why} for k, (ok, why) in backends.items()},
    }
