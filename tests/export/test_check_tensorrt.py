"""check_tensorrt on small crafted graphs: one graph per rule, a clean graph, version
differences between TensorRT 10.3 and 11, argument errors, and a real zoo export."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper

from effseg.export.tensorrt_check import Finding, check_tensorrt, fatal, format_findings

F = TensorProto.FLOAT


def vi(name, dtype=F, shape=(1, 3, 8, 8)):
    return helper.make_tensor_value_info(name, dtype, list(shape) if shape is not None else None)


def init(name, values, dtype=None):
    arr = np.asarray(values, dtype=dtype)
    return numpy_helper.from_array(arr, name)


def model(nodes, inputs=None, outputs=None, inits=(), opset=17, functions=()):
    inputs = inputs if inputs is not None else [vi("x")]
    outputs = outputs if outputs is not None else [vi("y", shape=None)]
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    imports = [helper.make_opsetid("", opset)] + [helper.make_opsetid(f.domain, 1) for f in functions]
    return helper.make_model(g, opset_imports=imports, functions=list(functions))


def one(op, inputs, inits=(), opset=17, name="n", x=None, **attrs):
    node = helper.make_node(op, inputs, ["y"], name=name, **attrs)
    return model([node], inputs=x, inits=inits, opset=opset)


def found(findings, severity, text):
    """The findings of that severity whose message or advice contains text."""
    return [f for f in findings if f.severity == severity and text in (f.message + f.advice)]


def assert_one(findings, severity, text, node="n"):
    hits = found(findings, severity, text)
    assert hits, f"no {severity} finding containing {text!r} in:\n{format_findings(findings)}"
    assert hits[0].node == node
    return hits[0]


# --- clean graph and API --------------------------------------------------------------

def clean_model():
    w = init("w", np.ones((4, 3, 3, 3)), np.float32)
    pads = init("pads", [0, 0, 1, 1, 0, 0, 1, 1], np.int64)
    axes = init("axes", [2, 3], np.int64)
    scales = init("scales", [1, 1, 2, 2], np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Pad", ["r", "pads"], ["p"], name="pad", mode="reflect"),
        helper.make_node("ReduceMean", ["p", "axes"], ["m"], name="mean", keepdims=1),
        helper.make_node("Mul", ["p", "m"], ["q"], name="mul"),
        helper.make_node("Resize", ["q", "", "scales"], ["y"], name="up", mode="linear",
                         coordinate_transformation_mode="half_pixel"),
    ]
    return model(nodes, outputs=[vi("y", shape=None)], inits=[w, pads, axes, scales], opset=18)


@pytest.mark.parametrize("version", ["10.3", "10", "10.x", "11", "11.x", "10.3.0.26", "10.12", "11.1"])
def test_clean_graph_has_no_problem(version):
    findings = check_tensorrt(clean_model(), trt_version=version)
    assert [f for f in findings if f.severity != "info"] == []
    assert fatal(findings) == []


def test_clean_graph_info_only_for_11():
    assert check_tensorrt(clean_model(), trt_version="10.3") == []
    info = check_tensorrt(clean_model(), trt_version="11")
    assert len(info) == 1 and info[0].severity == "info" and "strongly typed" in info[0].message
    assert "FP32" in info[0].message and "fp16" in info[0].advice


def test_path_input(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(one("Det", ["x"]), str(path))
    assert fatal(check_tensorrt(path)) and fatal(check_tensorrt(str(path)))


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "nope.onnx"
    with pytest.raises(FileNotFoundError, match="nope.onnx"):
        check_tensorrt(missing)


def test_bad_model_type():
    with pytest.raises(TypeError, match="onnx_path_or_model"):
        check_tensorrt(42)


@pytest.mark.parametrize("bad", ["9", "12", "10.3b", "latest", "", "10.", "8.6"])
def test_bad_version_names_argument_and_forms(bad):
    with pytest.raises(ValueError, match=r"trt_version.*10\.x"):
        check_tensorrt(clean_model(), trt_version=bad)


def test_bad_version_type():
    with pytest.raises(TypeError, match="trt_version"):
        check_tensorrt(clean_model(), trt_version=10.3)


def test_finding_is_frozen_and_helpers():
    f = Finding("fatal", "n", "Det", "m", "a")
    with pytest.raises(AttributeError):
        f.severity = "info"
    assert fatal([f, Finding("info", "", "", "i")]) == [f]
    text = format_findings([f, Finding("info", "", "", "i")])
    assert "FATAL" in text and "n (Det)" in text and "-> a" in text and "1 fatal" in text
    assert "no findings" in format_findings([])


def test_fatal_findings_come_first():
    m = one("Det", ["x"], x=[vi("x", shape=("N", 3, 8, 8))])
    findings = check_tensorrt(m)
    assert findings[0].severity == "fatal" and findings[-1].severity == "info"


# --- operators ------------------------------------------------------------------------

@pytest.mark.parametrize("op", ["Det", "Unique", "MaxUnpool", "Col2Im", "QLinearConv", "AffineGrid"])
def test_unsupported_op_is_fatal(op):
    assert_one(check_tensorrt(one(op, ["x"])), "fatal", f"{op} is not supported")


def test_custom_domain_without_plugin_is_fatal():
    node = helper.make_node("MyScan", ["x"], ["y"], name="n", domain="com.example")
    f = assert_one(check_tensorrt(model([node])), "fatal", "plugin named MyScan")
    assert f.op_type == "MyScan"


def test_custom_domain_with_plugin_is_warning():
    node = helper.make_node("MyScan", ["x"], ["y"], name="n", domain="com.example", plugin_version="1")
    findings = check_tensorrt(model([node]))
    assert not fatal(findings)
    assert_one(findings, "warning", "needs a TensorRT plugin named MyScan")


def test_removed_plugin_is_fatal_in_11_only():
    node = helper.make_node("Normalize_TRT", ["x"], ["y"], name="n", domain="trt.plugins")
    assert not fatal(check_tensorrt(model([node]), trt_version="10.3"))
    assert_one(check_tensorrt(model([node]), trt_version="11"), "fatal", "removed in TensorRT 11")


def test_unknown_default_domain_op_is_fatal():
    assert_one(check_tensorrt(one("NotAnOnnxOp", ["x"])), "fatal", "plugin named NotAnOnnxOp")


def test_local_function_body_is_checked():
    fn = helper.make_function("pkg.custom", "Block", ["a"], ["b"],
                              [helper.make_node("Det", ["a"], ["b"], name="inner")],
                              [helper.make_opsetid("", 17)])
    node = helper.make_node("Block", ["x"], ["y"], name="call", domain="pkg.custom")
    findings = check_tensorrt(model([node], functions=[fn]))
    f = assert_one(findings, "fatal", "Det is not supported", node="call/inner")
    assert f.op_type == "Det"
    assert not found(findings, "fatal", "custom-domain")


# --- opset ------------------------------------------------------------------------------

def test_opset_above_range_warns_per_version():
    m = one("Relu", ["x"], opset=22)
    assert_one(check_tensorrt(m, trt_version="10.3"), "warning", "above the parser's supported range", node="")
    assert not found(check_tensorrt(m, trt_version="11"), "warning", "supported range")


def test_opset_below_range():
    assert_one(check_tensorrt(one("Relu", ["x"], opset=8)), "warning", "below", node="")
    assert_one(check_tensorrt(one("Relu", ["x"], opset=6)), "fatal", "opset 7", node="")


# --- Loop / Scan / If --------------------------------------------------------------------

def loop_model(trip_const: bool, grow: bool = False):
    body_nodes = [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
                  helper.make_node("Concat" if grow else "Identity",
                                   ["v_in", "v_in"] if grow else ["v_in"], ["v_out"], axis=0),
                  helper.make_node("Identity", ["v_in"], ["scan_out"])]
    body = helper.make_graph(
        body_nodes, "body",
        [vi("i", TensorProto.INT64, []), vi("cond_in", TensorProto.BOOL, []), vi("v_in", F, (2,))],
        [vi("cond_out", TensorProto.BOOL, []), vi("v_out", F, (4,) if grow else (2,)),
         vi("scan_out", F, (2,))])
    inits = [init("cond", True, np.bool_), init("v0", [0.0, 0.0], np.float32)]
    trip = "trip"
    if trip_const:
        inits.append(init("trip", 4, np.int64))
    inputs = [vi("x"), vi("trip", TensorProto.INT64, [])] if not trip_const else [vi("x")]
    node = helper.make_node("Loop", [trip, "cond", "v0"], ["v_final", "y"], name="n", body=body)
    return model([node], inputs=inputs, inits=inits, outputs=[vi("y", shape=None)])


def test_loop_dynamic_scan_output_is_fatal():
    assert_one(check_tensorrt(loop_model(trip_const=False)), "fatal", "scan output")
    findings = check_tensorrt(loop_model(trip_const=True))
    assert not fatal(findings)
    assert_one(findings, "warning", "loop layer")


def test_loop_carried_shape_change_is_fatal():
    assert_one(check_tensorrt(loop_model(trip_const=True, grow=True)), "fatal", "changes shape")


def test_scan_warns():
    body = helper.make_graph([helper.make_node("Identity", ["s"], ["o"])], "b",
                             [vi("s", F, (3,))], [vi("o", F, (3,))])
    node = helper.make_node("Scan", ["x"], ["y"], name="n", body=body, num_scan_inputs=1)
    assert_one(check_tensorrt(model([node], inputs=[vi("x", F, (4, 3))])), "warning", "Scan")


def if_model(cond_const: bool, else_rank: int):
    then_g = helper.make_graph([helper.make_node("Identity", ["x"], ["t"])], "t", [], [vi("t", F, (1, 3, 8, 8))])
    shape = (1, 3, 8, 8) if else_rank == 4 else (3, 64)
    e_nodes = [helper.make_node("Reshape", ["x", "shp"], ["e"])]
    else_g = helper.make_graph(e_nodes, "e", [], [vi("e", F, shape)],
                               initializer=[init("shp", list(shape), np.int64)])
    inits = [init("c", True, np.bool_)] if cond_const else []
    inputs = [vi("x"), vi("c", TensorProto.BOOL, [])] if not cond_const else [vi("x")]
    node = helper.make_node("If", ["c"], ["y"], name="n", then_branch=then_g, else_branch=else_g)
    return model([node], inputs=inputs, inits=inits)


def test_if_rank_mismatch_is_fatal():
    assert_one(check_tensorrt(if_model(False, 2)), "fatal", "same rank")
    assert not fatal(check_tensorrt(if_model(False, 4)))


def test_if_constant_condition_is_info():
    findings = check_tensorrt(if_model(True, 2))
    assert not fatal(findings)
    assert_one(findings, "info", "constant")


# --- Resize --------------------------------------------------------------------------------

def resize(rank=4, **attrs):
    scales = init("scales", [1.0] * (rank - 2) + [2.0, 2.0], np.float32)
    return one("Resize", ["x", "", "scales"], inits=[scales], x=[vi("x", F, (1, 3, 8, 8)[:rank] if rank <= 4
                                                                      else (1, 3, 4, 8, 8))], **attrs)


def test_resize_cubic_warns_on_4d_and_is_fatal_on_5d():
    assert_one(check_tensorrt(resize(mode="cubic")), "warning", "cubic")
    assert_one(check_tensorrt(resize(rank=5, mode="cubic")), "fatal", "cubic")


@pytest.mark.parametrize("attrs,text", [
    ({"mode": "linear", "antialias": 1}, "antialias"),
    ({"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize"}, "tf_crop_and_resize"),
    ({"mode": "linear", "coordinate_transformation_mode": "half_pixel_symmetric"}, "half_pixel_symmetric"),
    ({"mode": "nearest", "coordinate_transformation_mode": "tf_half_pixel_for_nn", "nearest_mode": "floor"},
     "round_prefer_floor"),
    ({"mode": "linear", "keep_aspect_ratio_policy": "not_larger"}, "keep_aspect_ratio_policy"),
])
def test_resize_restrictions_are_fatal(attrs, text):
    assert_one(check_tensorrt(resize(**attrs), trt_version="10.3"), "fatal", text)


def test_resize_accepted_forms():
    for attrs in ({"mode": "nearest", "nearest_mode": "floor"},
                  {"mode": "linear", "coordinate_transformation_mode": "align_corners"},
                  {"mode": "linear", "exclude_outside": 1},
                  {"mode": "nearest", "coordinate_transformation_mode": "asymmetric"}):
        assert check_tensorrt(resize(**attrs)) == [], attrs


# --- Pad / axes inputs ---------------------------------------------------------------------

def test_pad_bad_mode_is_fatal():
    pads = init("pads", [0] * 8, np.int64)
    assert_one(check_tensorrt(one("Pad", ["x", "pads"], inits=[pads], mode="mirror")), "fatal", "mirror")


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
def test_pad_modes_accepted(mode):
    pads = init("pads", [0, 0, 1, 1, 0, 0, 1, 1], np.int64)
    assert check_tensorrt(one("Pad", ["x", "pads"], inits=[pads], mode=mode, opset=19)) == []


def test_pad_runtime_pads_warn():
    m = one("Pad", ["x", "pads"], x=[vi("x"), vi("pads", TensorProto.INT64, (8,))])
    f = assert_one(check_tensorrt(m), "warning", "pads")
    assert "initializer" in f.advice


def test_pad_runtime_axes_fatal_in_10_3_not_11():
    pads = init("pads", [1, 1, 1, 1], np.int64)
    m = one("Pad", ["x", "pads", "", "axes"], inits=[pads], opset=18,
            x=[vi("x"), vi("axes", TensorProto.INT64, (2,))])
    assert_one(check_tensorrt(m, trt_version="10.3"), "fatal", "axes")
    assert not fatal(check_tensorrt(m, trt_version="11"))


def test_slice_runtime_axes_fatal_before_10_3():
    starts, ends = init("s", [0], np.int64), init("e", [4], np.int64)
    m = one("Slice", ["x", "s", "e", "axes"], inits=[starts, ends],
            x=[vi("x"), vi("axes", TensorProto.INT64, (1,))])
    assert_one(check_tensorrt(m, trt_version="10"), "fatal", "axes")
    assert not fatal(check_tensorrt(m, trt_version="10.3"))


def test_slice_constant_axes_from_constant_node_ok():
    nodes = [helper.make_node("Constant", [], ["axes"], value=init("v", [2], np.int64)),
             helper.make_node("Slice", ["x", "s", "e", "axes"], ["y"], name="n")]
    m = model(nodes, inits=[init("s", [0], np.int64), init("e", [4], np.int64)])
    assert check_tensorrt(m, trt_version="10") == []


@pytest.mark.parametrize("op", ["ReduceMean", "ReduceSum", "ReduceMax"])
def test_reduce_runtime_axes_fatal(op):
    m = one(op, ["x", "axes"], opset=18, x=[vi("x"), vi("axes", TensorProto.INT64, (1,))])
    assert_one(check_tensorrt(m, trt_version="11"), "fatal", "axes")


def test_cumsum_runtime_axis_fatal_in_10_3_not_11():
    m = one("CumSum", ["x", "axis"], x=[vi("x"), vi("axis", TensorProto.INT64, [])])
    assert_one(check_tensorrt(m, trt_version="10.3"), "fatal", "axis")
    assert not fatal(check_tensorrt(m, trt_version="11"))
    ok = one("CumSum", ["x", "axis"], inits=[init("axis", 3, np.int64)])
    assert check_tensorrt(ok, trt_version="10.3") == []


# --- Einsum ---------------------------------------------------------------------------------

def einsum(eq, shapes):
    names = [f"a{i}" for i in range(len(shapes))]
    return one("Einsum", names, equation=eq, x=[vi(n, F, s) for n, s in zip(names, shapes)])


def test_einsum_diagonal_fatal_in_10_3_ok_in_11():
    m = einsum("ii->i", [(3, 3)])
    assert_one(check_tensorrt(m, trt_version="10.3"), "fatal", "diagonal")
    assert not fatal(check_tensorrt(m, trt_version="11"))


def test_einsum_broadcast_fatal_in_10_3():
    m = einsum("bij,bjk->bik", [(1, 2, 3), (4, 3, 5)])
    assert_one(check_tensorrt(m, trt_version="10.3"), "fatal", "broadcasts")
    assert not fatal(check_tensorrt(m, trt_version="11"))
    assert check_tensorrt(einsum("bij,bjk->bik", [(4, 2, 3), (4, 3, 5)]), trt_version="10.3") == []


def test_einsum_ellipsis_warns_in_10_3():
    m = einsum("...ij,...jk->...ik", [(2, 2, 3), (2, 3, 5)])
    assert_one(check_tensorrt(m, trt_version="10.3"), "warning", "ellipsis")
    assert check_tensorrt(m, trt_version="10.12") == []


def test_einsum_uppercase_fatal_everywhere():
    m = einsum("IJ,JK->IK", [(2, 3), (3, 4)])
    for v in ("10.3", "11"):
        assert_one(check_tensorrt(m, trt_version=v), "fatal", "lower-case")


# --- data types -----------------------------------------------------------------------------

def test_uint8_input_into_conv_is_fatal():
    w = init("w", np.ones((4, 3, 1, 1)), np.float32)
    m = one("Conv", ["x", "w"], inits=[w], x=[vi("x", TensorProto.UINT8)])
    assert_one(check_tensorrt(m), "fatal", "UINT8")
    cast = [helper.make_node("Cast", ["x"], ["xf"], to=F), helper.make_node("Conv", ["xf", "w"], ["y"])]
    assert check_tensorrt(model(cast, inputs=[vi("x", TensorProto.UINT8)], inits=[w])) == []


def test_int64_into_matmul_is_fatal():
    m = one("MatMul", ["x", "x"], x=[vi("x", TensorProto.INT64, (4, 4))])
    assert_one(check_tensorrt(m), "fatal", "INT64")
    assert_one(check_tensorrt(m), "info", "INT64 binding", node="")


def test_unsupported_dtype_initializer_and_cast_fatal():
    m = one("Add", ["x", "b"], inits=[init("b", [1], np.uint16)], x=[vi("x", TensorProto.UINT16, (1,))])
    assert_one(check_tensorrt(m), "fatal", "UINT16", node="")
    assert_one(check_tensorrt(one("Cast", ["x"], to=TensorProto.UINT32)), "fatal", "UINT32")


def test_double_warns_and_int8_input_fatal():
    m = one("Relu", ["x"], x=[vi("x", TensorProto.DOUBLE)])
    findings = check_tensorrt(m)
    assert not fatal(findings)
    assert_one(findings, "warning", "DOUBLE", node="")
    assert_one(check_tensorrt(one("Relu", ["x"], x=[vi("x", TensorProto.INT8)])), "fatal", "quantisation",
               node="")


def test_dynamic_input_dims_info():
    m = one("Relu", ["x"], x=[vi("x", F, ("batch", 3, "H", 64))])
    f = assert_one(check_tensorrt(m), "info", "optimisation profile", node="")
    assert "'x'" in f.message and "batch" in f.message and "H" in f.message


# --- Q/DQ -----------------------------------------------------------------------------------

def qdq(zp_values=0, zp_dtype=np.int8, scale=(0.1,), x_shape=(1, 3, 8, 8), op="QuantizeLinear",
        x_const=False, opset=17, **attrs):
    inits = [init("s", list(scale) if len(scale) > 1 else scale[0], np.float32)]
    ins = ["x", "s"]
    if zp_values is not None:
        zp = np.full(len(scale), zp_values) if len(scale) > 1 else zp_values
        inits.append(init("zp", zp, zp_dtype))
        ins.append("zp")
    dt = {np.int8: TensorProto.INT8, np.uint8: TensorProto.UINT8}.get(zp_dtype, F)
    x_dtype = F if op == "QuantizeLinear" else dt
    if x_const:
        inits.append(init("x", np.zeros(x_shape), np.float32 if x_dtype == F else zp_dtype))
        xs = []
    else:
        xs = [vi("x", x_dtype, x_shape)]
    return one(op, ins, inits=inits, x=xs, opset=opset, **attrs)


def test_qdq_zero_point_zero_int8_is_clean():
    assert check_tensorrt(qdq()) == []
    assert check_tensorrt(qdq(op="DequantizeLinear", x_const=True)) == []


def test_qdq_nonzero_zero_point_fatal():
    assert_one(check_tensorrt(qdq(zp_values=3)), "fatal", "not zero")


def test_qdq_uint8_zero_point_fatal():
    assert_one(check_tensorrt(qdq(zp_dtype=np.uint8)), "fatal", "UINT8")
    assert_one(check_tensorrt(qdq(zp_dtype=np.uint8, op="DequantizeLinear", x_const=True)), "fatal", "UINT8")


def test_q_without_zero_point_warns():
    assert_one(check_tensorrt(qdq(zp_values=None)), "warning", "no zero point")


def test_qdq_negative_scale_fatal():
    assert_one(check_tensorrt(qdq(scale=(-0.5,))), "fatal", "non-positive")


def test_qdq_per_channel_rules():
    ok = qdq(scale=(0.1, 0.2, 0.3, 0.4), x_shape=(4, 3, 3, 3), axis=0, x_const=True)
    assert check_tensorrt(ok) == []
    bad = qdq(scale=(0.1, 0.2, 0.3), x_shape=(4, 3, 3, 3), axis=0, x_const=True)
    assert_one(check_tensorrt(bad), "fatal", "per-channel scale")
    act = qdq(scale=(0.1, 0.2, 0.3), x_shape=(1, 3, 8, 8), axis=1)
    assert_one(check_tensorrt(act), "warning", "per tensor")


def test_block_quantisation_per_version():
    s = init("s", np.full((4, 2), 0.1), np.float32)
    zp8 = numpy_helper.from_array(np.zeros((4, 2), np.int8), "zp")
    w = init("x", np.zeros((4, 32)), np.float32)
    m = one("QuantizeLinear", ["x", "s", "zp"], inits=[w, s, zp8], x=[], opset=21, axis=1, block_size=16)
    for v in ("10.3", "11"):
        assert_one(check_tensorrt(m, trt_version=v), "fatal", "block quantisation")
    zpf8 = helper.make_tensor("zp", TensorProto.FLOAT8E4M3FN, [4, 2], np.zeros(8, np.float32).tolist())
    m8 = one("QuantizeLinear", ["x", "s", "zp"], inits=[w, s, zpf8], x=[], opset=21, axis=1, block_size=16)
    assert_one(check_tensorrt(m8, trt_version="10.3"), "fatal", "block quantisation")
    assert not fatal(check_tensorrt(m8, trt_version="11"))


# --- the rest -------------------------------------------------------------------------------

def topk(k=None, **attrs):
    node = helper.make_node("TopK", ["x", "k"], ["y", "idx"], name="n", **attrs)
    if k is None:
        return model([node], inputs=[vi("x"), vi("k", TensorProto.INT64, (1,))])
    return model([node], inits=[init("k", [k], np.int64)])


def test_topk_limits():
    assert_one(check_tensorrt(topk(4000)), "fatal", "3840")
    assert check_tensorrt(topk(5)) == []
    assert_one(check_tensorrt(topk()), "warning", "not a constant")
    assert_one(check_tensorrt(topk(5, sorted=0)), "fatal", "sorted")


def test_maxpool_indices_and_dilations():
    node = helper.make_node("MaxPool", ["x"], ["y", "idx"], name="n", kernel_shape=[2, 2])
    assert_one(check_tensorrt(model([node])), "fatal", "Indices")
    assert check_tensorrt(one("MaxPool", ["x"], kernel_shape=[2, 2])) == []
    assert_one(check_tensorrt(one("MaxPool", ["x"], kernel_shape=[2, 2], dilations=[2, 2])),
               "fatal", "dilations")
    assert_one(check_tensorrt(one("AveragePool", ["x"], kernel_shape=[2], x=[vi("x", F, (1, 3, 8))])),
               "fatal", "2-D or 3-D")


def test_gridsample_rules():
    x5 = [vi("x", F, (1, 3, 4, 8, 8)), vi("g", F, (1, 4, 8, 8, 3))]
    m5 = one("GridSample", ["x", "g"], x=x5, opset=20)
    assert_one(check_tensorrt(m5, trt_version="10.3"), "fatal", "4-D")
    assert not found(check_tensorrt(m5, trt_version="11.2"), "fatal", "4-D")
    x4 = [vi("x"), vi("g", F, (1, 8, 8, 2))]
    assert check_tensorrt(one("GridSample", ["x", "g"], x=x4, opset=17, mode="bilinear")) == []
    new_name = one("GridSample", ["x", "g"], x=x4, opset=20, mode="linear")
    assert_one(check_tensorrt(new_name, trt_version="10.3"), "fatal", "falls back to nearest")


def test_scatternd_reduction_fatal():
    m = one("ScatterND", ["x", "i", "u"], opset=18, reduction="add",
            x=[vi("x", F, (4,)), vi("i", TensorProto.INT64, (1, 1)), vi("u", F, (1,))])
    assert_one(check_tensorrt(m), "fatal", "reduction")


def test_nonzero_warns():
    assert_one(check_tensorrt(one("NonZero", ["x"])), "warning", "data-dependent")


def test_window_ops_by_version():
    m = one("HannWindow", ["n"], inits=[init("n", 8, np.int64)], x=[])
    assert_one(check_tensorrt(m, trt_version="10.3"), "fatal", "from 10.4")
    assert not fatal(check_tensorrt(m, trt_version="11"))


# --- a real export --------------------------------------------------------------------------

def test_zoo_unetformer_export_has_no_fatal_finding(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    import effseg
    from effseg.export import export_onnx

    model_ = effseg.create_model("unetformer", num_classes=6).eval()
    x = torch.randn(1, 3, 64, 64)
    path = tmp_path / "unetformer.onnx"
    export_onnx(model_, (x,), path, opset=17)
    for version in ("10.3", "11"):
        findings = check_tensorrt(path, trt_version=version)
        print(f"TensorRT {version}:\n{format_findings(findings)}")
        assert fatal(findings) == [], format_findings(findings)
