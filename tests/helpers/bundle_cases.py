"""Tiny segmentation nets written with onnx.helper, and bundles made from them, for the
runtime and bundle tests. The same seed gives the same weights whatever the declared
input size, so a static-size and a dynamic-size export of one net can be compared."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from effseg.export.bundle import bundle_meta, write_bundle

MEAN = (120.0, 110.0, 100.0)
STD = (60.0, 50.0, 40.0)


def conv_net(path, *, channels=3, classes=4, height=16, width=16, dynamic_hw=False, kernel=3,
             output_kind="logits", fp16_input=False, seed=0, hidden=8, dynamic_batch=False):
    """Conv(kernel, 'same' zero padding) -> Relu -> Conv 1x1: translation-equivariant
    away from the borders (exactly so everywhere when kernel == 1)."""
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((hidden, channels, kernel, kernel)).astype(np.float32) / kernel
    b1 = rng.standard_normal(hidden).astype(np.float32) * 0.1
    w2 = rng.standard_normal((classes, hidden, 1, 1)).astype(np.float32)
    b2 = rng.standard_normal(classes).astype(np.float32) * 0.1
    h, w = ("height", "width") if dynamic_hw else (height, width)
    n = "batch" if dynamic_batch else 1
    in_type = TensorProto.FLOAT16 if fp16_input else TensorProto.FLOAT
    nodes = []
    x = "input"
    if fp16_input:
        nodes.append(helper.make_node("Cast", ["input"], ["x32"], to=TensorProto.FLOAT))
        x = "x32"
    p = kernel // 2
    nodes += [helper.make_node("Conv", [x, "w1", "b1"], ["h1"], pads=[p, p, p, p]),
              helper.make_node("Relu", ["h1"], ["h2"]),
              helper.make_node("Conv", ["h2", "w2", "b2"], ["logits"])]
    if output_kind == "labels":
        nodes[-1].output[0] = "scores"
        nodes.append(helper.make_node("ArgMax", ["scores"], ["labels"], axis=1, keepdims=0))
        out = helper.make_tensor_value_info("labels", TensorProto.INT64, [n, h, w])
    else:
        out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [n, classes, h, w])
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("input", in_type, [n, channels, h, w])], [out],
        [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def make_bundle(tmp_path, name="bundle", *, channels=3, classes=4, height=16, width=16, dynamic_hw=False,
                kernel=3, output_kind="logits", fp16_input=False, tile_size=None, tile_overlap=None, seed=0,
                stats_scale=1.0, dynamic_batch=False, **meta_kw):
    """stats_scale multiplies mean and std: 257 gives 16-bit native units of the same statistics."""
    onnx_path = conv_net(tmp_path / f"{name}.onnx", channels=channels, classes=classes, height=height,
                         width=width, dynamic_hw=dynamic_hw, kernel=kernel, output_kind=output_kind,
                         fp16_input=fp16_input, seed=seed, dynamic_batch=dynamic_batch)
    meta = bundle_meta(architecture="tinyconv", num_classes=classes, input_shape=(channels, height, width),
                       output_name="labels" if output_kind == "labels" else "logits", output_kind=output_kind,
                       dtype="float16" if fp16_input else "float32", dynamic_hw=dynamic_hw, dynamic_batch=dynamic_batch,
                       mean=[m * stats_scale for m in MEAN[:channels] + (100.0,) * max(0, channels - 3)],
                       std=[s * stats_scale for s in STD[:channels] + (50.0,) * max(0, channels - 3)],
                       tile_size=tile_size, tile_overlap=tile_overlap, **meta_kw)
    return write_bundle(tmp_path / name, onnx_path, meta=meta)


def ort_run(onnx_path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0]
