"""What an autotune decision depends on, as a dict and its digest.

A measured choice holds for one machine (CPU model, the ISA effseg's kernels run, core
and thread counts, the versions of everything that runs the graph), one model structure
(the captured graph before effseg's passes, and its parameters' names, shapes and dtypes;
not their values, which do not change the speed of these ops), one input shape and dtype,
and one backend with its options. Anything else changes the digest, so the record is
measured again rather than trusted.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform

import torch

SCHEMA = 1


def machine() -> dict:
    from .. import _native
    from .._timing import _cpu_name
    from .._version import __version__

    if _native.available():
        isa = str(dict(_native.require().build_info()).get("simd"))
        cpp_threads = int(_native.require().get_num_threads())
    else:
        isa, cpp_threads = "none (effseg._C missing)", None
    return {"cpu": _cpu_name(), "isa": isa, "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "effseg_cpp_threads": cpp_threads,
            "effseg": __version__, "torch": torch.__version__,
            "python": platform.python_version()}


def graph_digest(gm: torch.fx.GraphModule) -> str:
    """sha256 of the captured graph's code and its tensors' names, shapes and dtypes."""
    h = hashlib.sha256(gm.code.encode())
    for name, t in sorted(gm.state_dict(keep_vars=True).items()):
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}\n".encode())
    return h.hexdigest()


def _plain(value):
    """Backend option values as JSON can hold them (anything else by its repr)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def tune_key(gm, x: torch.Tensor, backend: str, options: dict, device, dynamic: bool) -> dict:
    """The dict a record is filed under (and compared against when read back)."""
    opts = {k: _plain(v) for k, v in sorted(options.items())}
    mach = machine()
    if backend == "onnxruntime":
        # The session's thread count is the torch count unless the option sets it.
        opts.setdefault("intra_op_num_threads", torch.get_num_threads())
        import onnxruntime

        mach["onnxruntime"] = onnxruntime.__version__
    elif backend == "openvino":
        opts.setdefault("inference_num_threads", torch.get_num_threads())
        opts.setdefault("precision", "f32")
        import openvino

        mach["openvino"] = openvino.__version__
    return {"schema": SCHEMA, "machine": mach, "graph": graph_digest(gm),
            "input_shape": list(x.shape), "dtype": str(x.dtype).replace("torch.", ""),
            "device": str(device), "backend": backend, "options": opts, "dynamic": bool(dynamic)}


def digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
