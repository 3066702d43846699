"""depthwise_conv2d under opcheck, torch.compile(fullgraph=True), torch.export and ONNX
(ONNX Runtime parity)."""
import pytest
import torch
from dw_cases import assert_close, make

import effseg
from effseg.ops import depthwise_conv2d, depthwise_conv2d_ref


class DWBlock(torch.nn.Module):
    """A learnable depthwise conv calling the op (UNetFormer's 8 x 8 local branch size)."""

    def __init__(self, C=6, k=8, stride=1, padding="same", dilation=1, activation="gelu",
                 backend="auto"):
        super().__init__()
        g = torch.Generator().manual_seed(C * k)
        self.weight = torch.nn.Parameter(torch.randn(C, 1, k, k, generator=g) / k)
        self.bias = torch.nn.Parameter(torch.randn(C, generator=g))
        self.kw = {"stride": stride, "padding": padding, "dilation": dilation, "activation": activation}
        self.backend = backend

    def forward(self, x):
        return depthwise_conv2d(x, self.weight, self.bias, **self.kw, backend=self.backend)

    def reference(self, x):
        return depthwise_conv2d_ref(x, self.weight, self.bias, **self.kw)


@pytest.mark.parametrize("act", [0, 3])
def test_opcheck(require_backend, act):
    require_backend("cpp")
    x, w, b = make(2, 3, 6, 7, 4, 3)
    args = (x.requires_grad_(), w.requires_grad_(), b, [1, 1], [1, 2, 1, 1], [1, 1], act, "auto")
    torch.library.opcheck(torch.ops.effseg.depthwise_conv2d.default, args)


@pytest.mark.parametrize("compiler", ["aot_eager", "inductor"])
def test_torch_compile_fullgraph_forward_and_backward(require_backend, compiler):
    require_backend("cpp")
    m = DWBlock()
    x = make(2, 6, 13, 11, 1)[0]
    compiled = torch.compile(m, fullgraph=True, backend=compiler)
    assert_close(compiled(x), m.reference(x), torch.float32, "compiled forward")
    compiled(x).square().sum().backward()
    got = (m.weight.grad.clone(), m.bias.grad.clone())
    m.zero_grad()
    m.reference(x).square().sum().backward()
    assert_close(got[0], m.weight.grad, torch.float32, "compiled dweight")
    assert_close(got[1], m.bias.grad, torch.float32, "compiled dbias")


def test_torch_compile_no_grad_strided(require_backend):
    require_backend("cpp")
    m = DWBlock(C=9, k=5, stride=2, padding=2, activation="relu6")
    x = make(1, 9, 17, 12, 1)[0]
    with torch.no_grad():
        out = torch.compile(m, fullgraph=True, backend="aot_eager")(x)
        assert_close(out, m.reference(x), torch.float32)


def test_torch_export_keeps_the_custom_op(require_backend):
    require_backend("cpp")
    m = DWBlock()
    x = make(1, 6, 9, 10, 1)[0]
    ep = torch.export.export(m, (x,))
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert any("effseg.depthwise_conv2d" in t for t in targets), targets
    assert_close(ep.module()(x), m.reference(x), torch.float32, "exported forward")


@pytest.fixture
def onnx_modules():
    onnx = pytest.importorskip("onnx", reason="onnx is not installed (the export extra)")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (the export extra)")
    pytest.importorskip("onnxscript", reason="onnxscript is not installed (the export extra)")
    return onnx, ort


@pytest.mark.parametrize("kw", [
    {"C": 6, "k": 8, "padding": "same", "activation": "gelu"},           # asymmetric pad + Erf
    {"C": 5, "k": 3, "stride": 2, "padding": 1, "activation": "relu6"},
    {"C": 4, "k": 5, "padding": 4, "dilation": 2, "activation": "silu"},
    {"C": 3, "k": 7, "padding": "valid", "activation": None},
])
def test_onnx_export_runtime_parity(require_backend, onnx_modules, tmp_path, kw):
    _onnx, ort = onnx_modules
    m = DWBlock(**kw)
    x = make(2, kw["C"], 19, 16, 1, seed=kw["k"])[0]
    path = tmp_path / "dw.onnx"
    proto = effseg.export.export_onnx(m, (x,), path)
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    assert len(convs) == 1, effseg.export.onnx_op_types(proto)
    group = {a.name: a.i for a in convs[0].attribute}.get("group")
    assert group == kw["C"], "a grouped Conv with group = channels"
    assert not any(n.domain not in ("", "ai.onnx") for n in proto.graph.node), "standard ops only"
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        want = m.reference(x)
    assert_close(torch.from_numpy(got), want, torch.float32, "onnxruntime vs ref")
