"""effseg.compile's backends: build(gm, example, device=..., options=...) -> callable(x).

gm is the captured, rewritten GraphModule for one input specialisation; the callable
runs it and returns what the model returns.
"""
from __future__ import annotations

from . import eager, inductor, onnxruntime, openvino, tensorrt

BACKENDS = {
    "eager": eager.build,
    "inductor": inductor.build,
    "onnxruntime": onnxruntime.build,
    "openvino": openvino.build,
    "tensorrt": tensorrt.build,
}

USABLE = {
    "eager": eager.usable,
    "inductor": inductor.usable,
    "onnxruntime": onnxruntime.usable,
    "openvino": openvino.usable,
    "tensorrt": tensorrt.usable,
}

__all__ = ["BACKENDS", "USABLE"]
