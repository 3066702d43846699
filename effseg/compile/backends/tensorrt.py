"""TensorRT: needs the tensorrt package and its libraries, absent on these machines."""
from __future__ import annotations


def usable(device) -> tuple[bool, str]:
    try:
        import tensorrt  # noqa: F401
    except Exception as exc:  # noqa: BLE001  ImportError, or OSError when the libraries are missing
        return False, f"the 'tensorrt' Python package does not import ({type(exc).__name__}: {exc})"
    if device.type != "cuda":
        return False, "TensorRT runs on CUDA devices only"
    return False, "effseg has no TensorRT engine builder yet (effseg.export.tensorrt)"


def build(gm, example, *, device, options):
    _, why = usable(device)
    raise RuntimeError(f"backend 'tensorrt' is unusable: {why}")
