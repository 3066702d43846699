"""effseg.export.to_onnx on small nets: parity, opset 17, dynamic shapes, fp16, argmax,
and the errors. The zoo models are in test_zoo_export.py."""
import numpy as np
import onnx
import pytest
import torch
from torch import nn

import effseg
from effseg.export import to_onnx
from effseg.export.opset import OpsetError, downgrade_to_17
from effseg.export.to_onnx import ort_run
from effseg.nn import SS2D


class TinySeg(nn.Module):
    """Conv+BN+ReLU, a depthwise conv, an SS2D (selective scan) block and a bilinear
    upsample: the op mix of the zoo at a size that exports in seconds."""
    size_multiple = 8

    def __init__(self, classes=4):
        super().__init__()
        self.in_channels = 3
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.ss = SS2D(16, d_state=4)
        self.head = nn.Conv2d(16, classes, 1)

    def forward(self, x):
        y = self.stem(x)
        y = self.dw(y)
        y = y + self.ss(y.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return nn.functional.interpolate(self.head(y), scale_factor=2, mode="bilinear", align_corners=False)


def _model():
    torch.manual_seed(0)
    m = TinySeg().eval()
    with torch.no_grad():  # non-trivial running statistics, so folding BN changes numbers
        m.stem[1].running_mean.uniform_(-0.5, 0.5)
        m.stem[1].running_var.uniform_(0.5, 2.0)
    return m


def _rel_err(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def _assert_matches_at(path, model, shapes):
    """ONNX Runtime runs the file at each input shape within 1e-4 of PyTorch."""
    for shape in shapes:
        x = torch.randn(shape)
        with torch.no_grad():
            want = model(x).numpy()
        got = ort_run(path, x.numpy())
        assert got.shape == want.shape
        assert _rel_err(got, want) <= 1e-4, shape


def test_static_fp32_opset17_parity_and_bn_folded(tmp_path):
    m = _model()
    rep = to_onnx(m, tmp_path / "m.onnx", input_shape=(1, 3, 24, 40))
    proto = onnx.load(tmp_path / "m.onnx")
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [17]
    onnx.checker.check_model(proto, full_check=True)
    types = {n.op_type for n in proto.graph.node}
    assert not types & {"Loop", "Scan", "Einsum", "BatchNormalization"}, types
    assert rep.parity["ok"] and rep.parity["rel_err"] <= 1e-4
    x = torch.randn(1, 3, 24, 40)
    with torch.no_grad():
        want = m(x).numpy()
    assert _rel_err(ort_run(tmp_path / "m.onnx", x.numpy()), want) <= 1e-4


def test_dynamic_batch_and_hw_run_at_other_sizes(tmp_path):
    m = _model()
    rep = to_onnx(m, tmp_path / "d.onnx", input_shape=(1, 3, 16, 16), dynamic_batch=True, dynamic_hw=True,
                  max_hw=256)
    assert rep.dynamic_batch and rep.dynamic_hw and rep.max_hw == 256
    _assert_matches_at(tmp_path / "d.onnx", m, [(3, 3, 40, 24), (2, 3, 64, 72)])


def test_fp16_graph_is_typed_half_and_agrees_on_argmax(tmp_path):
    m = _model()
    rep = to_onnx(m, tmp_path / "h.onnx", input_shape=(2, 3, 32, 32), dtype="fp16")
    proto = onnx.load(tmp_path / "h.onnx")
    f16 = onnx.TensorProto.FLOAT16
    assert proto.graph.input[0].type.tensor_type.elem_type == f16
    assert proto.graph.output[0].type.tensor_type.elem_type == f16
    conv_w = {n.input[1] for n in proto.graph.node if n.op_type == "Conv"}
    assert all(i.data_type == f16 for i in proto.graph.initializer if i.name in conv_w)
    assert rep.parity["argmax_agreement"] >= 0.995 and rep.parity["rel_err"] <= 2e-2


def test_argmax_output_is_int32_class_map(tmp_path):
    m = _model()
    rep = to_onnx(m, tmp_path / "a.onnx", input_shape=(1, 3, 32, 48), argmax=True)
    assert rep.output == "labels"
    x = torch.randn(1, 3, 32, 48)
    got = ort_run(tmp_path / "a.onnx", x.numpy())
    assert got.dtype == np.int32 and got.shape == (1, 32, 48)
    with torch.no_grad():
        want = m(x).argmax(1).numpy()
    assert (got == want).mean() >= 0.995


def test_parity_failure_raises_with_figures(tmp_path, monkeypatch):
    import sys

    T = sys.modules["effseg.export.to_onnx"]  # the package attribute is the function
    real = T.ort_run
    monkeypatch.setattr(T, "ort_run", lambda path, x: real(path, x) + 0.5)  # a wrong runtime result
    with pytest.raises(effseg.ParityError, match="disagrees") as info:
        to_onnx(_model(), tmp_path / "p.onnx", input_shape=(1, 3, 16, 16))
    assert info.value.figures["rel_err"] > 1e-4


def test_compiled_model_exports_its_eager_model(tmp_path):
    m = _model()
    cm = effseg.compile(m, example_input=torch.randn(1, 3, 16, 16), backend="eager")
    rep = to_onnx(cm, tmp_path / "c.onnx", input_shape=(3, 16, 16))
    assert rep.input_shape == (1, 3, 16, 16) and rep.parity["ok"]


@pytest.mark.parametrize("kwargs, match", [
    ({"input_shape": (1, 3, 16)}, "input_shape"),
    ({"input_shape": (1, 3, 0, 16)}, "input_shape"),
    ({"input_shape": (1, 4, 16, 16)}, "in_channels"),
    ({"input_shape": (1, 3, 16, 16), "dtype": "int8"}, "dtype"),
    ({"input_shape": (1, 3, 16, 16), "opset": 11}, "opset"),
    ({"input_shape": (1, 3, 16, 16), "max_hw": 8}, "max_hw"),
    ({"input_shape": (1, 3, 20, 16), "dynamic_hw": True}, "multiple of 8"),
])
def test_bad_arguments_name_themselves(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        to_onnx(_model(), tmp_path / "x.onnx", **kwargs)


def test_bad_model_and_path(tmp_path):
    with pytest.raises(TypeError, match="model"):
        to_onnx(lambda x: x, tmp_path / "x.onnx", input_shape=(1, 3, 8, 8))
    with pytest.raises(FileNotFoundError, match="path"):
        to_onnx(_model(), tmp_path / "missing" / "x.onnx", input_shape=(1, 3, 8, 8))


def _graph(nodes, inits, opset):
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 4])
    ys = [onnx.helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, [2, None]) for o in nodes[-1].output]
    g = onnx.helper.make_graph(nodes, "g", [x], ys, initializer=inits)
    return onnx.helper.make_model(g, opset_imports=[onnx.helper.make_opsetid("", opset)], ir_version=10)


def test_downgrade_rewrites_opset18_forms_and_keeps_results():
    axes = onnx.numpy_helper.from_array(np.array([1], np.int64), "axes")
    nodes = [onnx.helper.make_node("ReduceMean", ["x", "axes"], ["m"], keepdims=1),
             onnx.helper.make_node("Sub", ["x", "m"], ["c"]),
             onnx.helper.make_node("Split", ["c"], ["a", "b"], axis=1, num_outputs=2)]
    model = _graph(nodes, [axes], 18)
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    import onnxruntime as ort

    def run(mdl):
        return ort.InferenceSession(mdl.SerializeToString()).run(None, {"x": x})

    want = run(model)
    down = downgrade_to_17(model)
    onnx.checker.check_model(down, full_check=True)
    assert not down.graph.initializer  # the axes input became an attribute
    for g, w in zip(run(down), want):
        np.testing.assert_array_equal(g, w)


def test_downgrade_refuses_what_opset17_cannot_say():
    axes = onnx.helper.make_node("Shape", ["x"], ["axes"])  # axes computed at run time
    nodes = [axes, onnx.helper.make_node("ReduceMax", ["x", "axes"], ["m"])]
    with pytest.raises(OpsetError, match="computed at run time"):
        downgrade_to_17(_graph(nodes, [], 18))
    sizes = onnx.numpy_helper.from_array(np.array([2, 4], np.int64), "sizes")
    nodes = [onnx.helper.make_node("Resize", ["x", "", "", "sizes"], ["r"], antialias=1, mode="linear")]
    with pytest.raises(OpsetError, match="antialias"):
        downgrade_to_17(_graph(nodes, [sizes], 18))


def test_dynamic_dims_are_named(tmp_path):
    to_onnx(_model(), tmp_path / "n.onnx", input_shape=(1, 3, 16, 16), dynamic_batch=True, dynamic_hw=True,
            max_hw=64)
    proto = onnx.load(tmp_path / "n.onnx")
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    out = [d.dim_param or d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim]
    assert out == ["batch", 4, "height", "width"]


class FineSeg(TinySeg):
    """TinySeg accepting any even size, so the scan length (H/2 * W/2) at a second size
    can have another remainder modulo the export chunk than at the traced size."""
    size_multiple = 2


def test_dynamic_hw_scan_length_with_another_remainder(tmp_path):
    torch.manual_seed(0)
    m = FineSeg().eval()
    to_onnx(m, tmp_path / "f.onnx", input_shape=(1, 3, 16, 16), dynamic_hw=True, max_hw=64)
    _assert_matches_at(tmp_path / "f.onnx", m, [(1, 3, 18, 14), (1, 3, 10, 2), (1, 3, 22, 30)])  # L = 63, 5, 165
