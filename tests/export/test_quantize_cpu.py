"""quantize(target="cpu"): the Q/DQ placement ONNX Runtime's x86 integer kernels need.

Kernels are checked in the graph ORT itself will execute (its optimized_model_filepath),
never by timing.
"""
import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxruntime.quantization")

from effseg.export import calibrate
from effseg.export.quantize import quantize
from effseg.export.to_onnx import to_onnx
from effseg.export.quantize_cpu import (CPU_OP_TYPES, INTEGER_KERNELS, kernel_census, spatial_means_to_pooling,
                                        speed_vs_fp32)

SIZE = 32


class Block(nn.Module):
    """What the zoo is made of: Conv+BN+ReLU, a depthwise conv, a residual Add, a token
    MatMul with Softmax attention, average pooling and a bilinear upsample."""

    def __init__(self, classes=4, width=16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.dw = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, groups=width), nn.BatchNorm2d(width),
                                nn.ReLU6())
        self.pw = nn.Conv2d(width, width, 1)
        self.qkv = nn.Linear(width, 3 * width)
        self.pool = nn.AvgPool2d(3, stride=1, padding=1)
        self.head = nn.Conv2d(width, classes, 1)

    def forward(self, x):
        h = self.stem(x)
        h = h + self.pw(self.dw(h))
        n, c, hh, ww = h.shape
        q, k, v = self.qkv(h.flatten(2).transpose(1, 2)).chunk(3, dim=-1)
        attn = torch.softmax(q @ k.transpose(1, 2) / c ** 0.5, dim=-1)
        h = h + (attn @ v).transpose(1, 2).reshape(n, c, hh, ww)
        h = F.interpolate(self.pool(h), scale_factor=2, mode="bilinear", align_corners=False)
        return self.head(h)


def images(n, seed):
    """Smooth random fields, normalised: what calibration images look like to a conv net."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 4, 4, generator=g) * 4 - 2
    x = F.interpolate(low, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    return (x + 0.1 * torch.randn(x.shape, generator=g)).numpy().astype(np.float32)


@pytest.fixture(scope="module")
def fp32_onnx(tmp_path_factory):
    torch.manual_seed(0)
    net = Block().eval()
    for m in net.modules():  # BN with non-trivial statistics, so folding it matters
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    path = tmp_path_factory.mktemp("qcpu") / "block.onnx"
    to_onnx(net, path, input_shape=(1, 3, SIZE, SIZE), progress=False)
    return path


@pytest.fixture(scope="module")
def cpu_int8(fp32_onnx, tmp_path_factory):
    out = tmp_path_factory.mktemp("qcpu") / "block.int8.onnx"
    report = quantize(fp32_onnx, out, images(4, 1), validation=images(2, 2), target="cpu", progress=False)
    return out, report


def test_cpu_placement_runs_every_conv_and_weight_matmul_as_an_integer_kernel(cpu_int8):
    out, report = cpu_int8
    census = kernel_census(out)
    ops = census["ops"]
    assert ops.get("QLinearConv", 0) == 3, ops  # stem, dw, pw
    assert ops.get("Conv", 0) + ops.get("FusedConv", 0) == 1, ops  # the 1x1 classifier keeps fp32 logits
    # qkv (a constant weight) runs in integers; q @ k^T and attn @ v stay fp32, so the
    # Softmax between them does too.
    assert _integer_matmuls(ops) == 1, ops
    assert census["float"] == 3 and "QLinearSoftmax" not in ops and "Softmax" in ops, ops
    assert report.target == "cpu" and report.method == "minmax"  # the cpu target's default calibration
    assert report.kernels == {"integer": census["integer"], "float": 3}
    assert report.quantized_nodes == census["integer"]


def _integer_matmuls(ops):
    return sum(ops.get(k, 0) for k in ("QLinearMatMul", "MatMulIntegerToFloat", "QGemm"))


def test_activation_matmuls_on_cpu_quantise_the_attention_products_too(fp32_onnx, tmp_path):
    out = tmp_path / "all.onnx"
    quantize(fp32_onnx, out, images(2, 1), target="cpu", activation_matmuls=True, progress=False)
    census = kernel_census(out)
    assert _integer_matmuls(census["ops"]) == 3 and census["float"] == 1, census["ops"]


def test_spatial_mean_becomes_global_pooling():
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 4, 4])
    nodes = [helper.make_node("ReduceMean", ["x"], ["m"], name="squeeze", axes=[-1, -2], keepdims=1),
             helper.make_node("ReduceMean", ["x"], ["c"], name="channels", axes=[1], keepdims=1)]
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("m", "c")]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], outs), opset_imports=[helper.make_opsetid("", 17)])
    assert spatial_means_to_pooling(model) == 1
    assert [n.op_type for n in model.graph.node] == ["GlobalAveragePool", "ReduceMean"]
    v = np.random.default_rng(0).normal(size=(1, 8, 4, 4)).astype(np.float32)
    m, c = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": v})
    np.testing.assert_allclose(m, v.mean(axis=(2, 3), keepdims=True), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c, v.mean(axis=1, keepdims=True), rtol=1e-5, atol=1e-6)


def test_tensorrt_placement_leaves_onnx_runtime_in_fp32(fp32_onnx, tmp_path):
    # The cause of the slow INT8 in ORT: Q/DQ on Conv inputs only, no Q after the Conv,
    # so ORT cannot form QLinearConv and runs the fp32 Conv behind a DequantizeLinear.
    out = tmp_path / "trt.onnx"
    report = quantize(fp32_onnx, out, images(2, 1), target="tensorrt", progress=False)
    assert report.method == "entropy"
    census = kernel_census(out)
    assert census["float"] >= 4
    assert census["ops"].get("QLinearConv", 0) == 0


def test_cpu_placement_uses_uint8_activations_and_int8_weights(cpu_int8):
    out, _ = cpu_int8
    model = onnx.load(str(out))
    inits = {t.name: t for t in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    act_types, weight_types = set(), set()
    quantised = [n for n in model.graph.node if n.op_type == "Conv" and n.input[1] in producers]
    assert len(quantised) == 3  # all but the classifier head
    for n in quantised:
        for i, kinds in ((0, act_types), (1, weight_types)):
            dq = producers[n.input[i]]
            assert dq.op_type == "DequantizeLinear", f"{n.name} input {i} is not dequantised"
            zp = inits.get(dq.input[2]) if len(dq.input) > 2 else None
            src = inits.get(dq.input[0])
            kinds.add((src or zp).data_type)
    assert act_types == {onnx.TensorProto.UINT8}
    assert weight_types == {onnx.TensorProto.INT8}


def test_ops_outside_the_placement_get_no_integer_kernel(cpu_int8):
    out, _ = cpu_int8
    ops = kernel_census(out)["ops"]
    # ORT's int8 Softmax and AveragePool are slower than fp32 on a CPU.
    assert "QLinearAveragePool" not in ops and "AveragePool" in ops
    assert not {"Softmax", "AveragePool", "Resize", "ReduceMean"} & set(CPU_OP_TYPES)
    assert "QLinearConv" in INTEGER_KERNELS


def test_cpu_int8_agrees_with_fp32(fp32_onnx, cpu_int8):
    out, report = cpu_int8
    assert report.validation_images == 2
    assert report.pixel_agreement >= 0.9
    x = images(1, 3)
    s32 = ort.InferenceSession(str(fp32_onnx), providers=["CPUExecutionProvider"])
    s8 = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    a, b = (s.run(None, {s.get_inputs()[0].name: x})[0] for s in (s32, s8))
    # Untrained logits sit close together; a wrong scale or zero point errs by about their size.
    assert np.abs(a - b).max() <= 0.25 * np.abs(a).max()


def test_speed_report_is_structured_not_asserted(fp32_onnx, cpu_int8):
    out, _ = cpu_int8
    s = speed_vs_fp32(fp32_onnx, out, images(1, 4), threads=1, rounds=1, repeats=1)
    assert set(s) == {"fp32_ms", "int8_ms", "speedup"}
    assert s["fp32_ms"] > 0 and s["int8_ms"] > 0
    # ms are rounded to 1 us: the ratio of the rounded figures is within 5% of the speedup
    assert s["speedup"] == pytest.approx(s["fp32_ms"] / s["int8_ms"], rel=0.05)
    with pytest.raises(ValueError, match="rounds and repeats"):
        speed_vs_fp32(fp32_onnx, out, images(1, 4), rounds=0)


def test_bad_target_and_speed_request_are_named(fp32_onnx, tmp_path):
    with pytest.raises(ValueError, match="target must be one of 'tensorrt', 'cpu'; got 'gpu'"):
        quantize(fp32_onnx, tmp_path / "q.onnx", images(1, 1), target="gpu", progress=False)
    with pytest.raises(ValueError, match="compare_speed applies to target='cpu'"):
        quantize(fp32_onnx, tmp_path / "q.onnx", images(1, 1), target="tensorrt", compare_speed=True,
                 progress=False)


def test_signed_range_clips_each_side_and_keeps_zero():
    h = calibrate.Histogram()
    h.update(np.linspace(0.5, 4.0, 1000, dtype=np.float32))  # post-ReLU: nothing below zero
    assert calibrate.signed_range(h, "minmax") == (0.0, 4.0)
    h = calibrate.Histogram()
    x = np.concatenate([np.linspace(-1, 1, 10000), [-50.0]]).astype(np.float32)
    h.update(x)
    lo, hi = calibrate.signed_range(h, "percentile", percentile=99.9)
    assert -1.1 < lo < -0.9 and hi == pytest.approx(1.0, abs=0.01)  # the outlier is clipped
    assert (h.lo, h.hi) == (-50.0, 1.0)


def test_excluded_nodes_by_pattern_and_attention_matmuls():
    from onnx import TensorProto, helper, numpy_helper

    from effseg.export.quantize_cpu import excluded_nodes, name_nodes

    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["a"], name="proj"),
             helper.make_node("MatMul", ["a", "x"], ["b"]),  # two activations, unnamed
             helper.make_node("Relu", ["b"], ["y"], name="head_relu")]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 4])
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], [w]))
    name_nodes(model)
    names = [n.name for n in model.graph.node]
    assert names[1] == "MatMul_1" and len(set(names)) == 3
    # head_relu makes the output: the head stays fp32 whatever else is asked
    assert excluded_nodes(model, ["pro*"], activation_matmuls=True) == {"proj", "head_relu"}
    assert excluded_nodes(model, [], activation_matmuls=False) == {"MatMul_1", "head_relu"}


def test_head_is_found_through_resize_and_argmax():
    from onnx import TensorProto, helper

    from effseg.export.quantize_cpu import head_nodes

    nodes = [helper.make_node("Conv", ["x", "w"], ["h"], name="body"),
             helper.make_node("Conv", ["h", "w2"], ["logits"], name="cls"),
             helper.make_node("Resize", ["logits", "", "s"], ["up"], name="up"),
             helper.make_node("ArgMax", ["up"], ["y"], name="am", axis=1)]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, None)
    y = helper.make_tensor_value_info("y", TensorProto.INT64, None)
    assert head_nodes(helper.make_model(helper.make_graph(nodes, "g", [x], [y]))) == {"cls"}
