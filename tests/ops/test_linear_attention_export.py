"""linear_attention under torch.library.opcheck, torch.compile, torch.export and ONNX."""
import pytest
import torch
from attention_cases import assert_close, make_qkv

import effseg
from effseg.ops import linear_attention, linear_attention_ref


class Block(torch.nn.Module):
    """q, k, v from 1x1 convolutions of x, as the GeoSeg modules make them."""

    def __init__(self, c=8, ck=3, kind="taylor", backend="auto"):
        super().__init__()
        self.q = torch.nn.Conv1d(c, ck, 1)
        self.k = torch.nn.Conv1d(c, ck, 1)
        self.v = torch.nn.Conv1d(c, c, 1)
        self.kind, self.backend = kind, backend

    def forward(self, x):
        return linear_attention(self.q(x), self.k(x), self.v(x), kind=self.kind,
                                backend=self.backend)

    def reference(self, x):
        return linear_attention_ref(self.q(x), self.k(x), self.v(x), kind=self.kind)


@pytest.mark.parametrize("kind", ["taylor", "softplus"])
def test_opcheck(kind, require_backend):
    require_backend("cpp")
    q, k, v = make_qkv(2, 3, 4, 11, requires_grad=True)
    torch.library.opcheck(torch.ops.effseg.linear_attention.default, (q, k, v, kind, 1e-6, "cpp"))
    torch.library.opcheck(torch.ops.effseg.linear_attention.default, (q, k, v, kind, 1e-6, "ref"))


@pytest.mark.parametrize("kind", ["taylor", "softplus"])
def test_torch_compile_fullgraph_forward_and_backward(kind, require_backend):
    require_backend("cpp")
    torch.manual_seed(0)
    m = Block(kind=kind)
    x = torch.randn(2, 8, 45)
    compiled = torch.compile(m, fullgraph=True, backend="aot_eager")
    assert_close(compiled(x), m.reference(x), 1e-5, "compiled forward")
    compiled(x).square().sum().backward()
    grads = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    m.reference(x).square().sum().backward()
    for g, p in zip(grads, m.parameters()):
        assert_close(g, p.grad, 1e-4, "compiled parameter gradient")


def test_torch_compile_inductor(require_backend):
    require_backend("cpp")
    m = Block(kind="softplus")
    x = torch.randn(1, 8, 70)
    assert_close(torch.compile(m, fullgraph=True)(x), m.reference(x), 1e-5, "inductor")


def test_torch_export_keeps_the_custom_op(require_backend):
    require_backend("cpp")
    m = Block()
    x = torch.randn(2, 8, 30)
    ep = torch.export.export(m, (x,))
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert any("effseg.linear_attention" in t for t in targets), targets
    assert_close(ep.module()(x), m.reference(x), 1e-5, "exported forward")


@pytest.fixture
def onnx_modules():
    onnx = pytest.importorskip("onnx", reason="onnx is not installed (the export extra)")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (the export extra)")
    pytest.importorskip("onnxscript", reason="onnxscript is not installed (the export extra)")
    return onnx, ort


@pytest.mark.parametrize("kind", ["taylor", "softplus"])
@pytest.mark.parametrize("n", [1, 37, 300])
def test_onnx_export_runtime_parity(kind, n, onnx_modules, tmp_path):
    _, ort = onnx_modules
    torch.manual_seed(n)
    m = Block(kind=kind)
    x = torch.randn(2, 8, n)
    path = tmp_path / "la.onnx"
    proto = effseg.export.export_onnx(m, (x,), path)
    types = effseg.export.onnx_op_types(proto)
    assert "Einsum" not in types, types
    assert {"MatMul", "ReduceSum"} <= types, types
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        want = m.reference(x)
    assert_close(torch.from_numpy(got), want, 1e-5, f"onnxruntime {kind}")
