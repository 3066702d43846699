"""The selective scan under torch.compile, torch.export and ONNX (Runtime parity)."""
import pytest
import torch
from scan_cases import assert_close, make_inputs

import effseg
from effseg.ops import selective_scan, selective_scan_ref


class ScanBlock(torch.nn.Module):
    """A Mamba-style mixer: learnable A_log, D, dt bias; u, delta, B, C, z are inputs."""

    def __init__(self, dm=8, n=4, backend="auto"):
        super().__init__()
        self.A_log = torch.nn.Parameter(torch.log(torch.arange(1.0, n + 1)).repeat(dm, 1))
        self.D = torch.nn.Parameter(torch.randn(dm))
        self.dt_bias = torch.nn.Parameter(0.1 * torch.randn(dm))
        self.backend = backend

    def forward(self, u, delta, B, C, z):
        return selective_scan(u, delta, -torch.exp(self.A_log), B, C, self.D, z, self.dt_bias,
                              True, backend=self.backend)

    def reference(self, u, delta, B, C, z):
        return selective_scan_ref(u, delta, -torch.exp(self.A_log), B, C, self.D, z, self.dt_bias, True)


def _args(bt=2, dm=8, n=4, length=40, seed=0):
    kw = make_inputs(bt=bt, dm=dm, length=length, n=n, b_form="var", c_form=2, seed=seed)
    return (kw["u"], kw["delta"], kw["B"], kw["C"], kw["z"])


def test_opcheck_fake_kernel_and_autograd_registration(require_backend):
    require_backend("cpp")
    kw = make_inputs(bt=2, dm=4, length=6, n=3, b_form="const", c_form=2)
    args = (kw["u"].requires_grad_(), kw["delta"], kw["A"], kw["B"], kw["C"], kw["D"], kw["z"],
            kw["delta_bias"], kw["initial_state"], True, "auto")
    torch.library.opcheck(torch.ops.effseg.selective_scan.default, args)


def test_torch_compile_fullgraph_forward_and_backward(require_backend):
    require_backend("cpp")
    torch.manual_seed(0)
    m = ScanBlock()
    args = _args()
    compiled = torch.compile(m, fullgraph=True, backend="aot_eager")
    assert_close(compiled(*args), m.reference(*args), 1e-4, "compiled forward")
    compiled(*args).square().sum().backward()
    g_compiled = m.A_log.grad.clone()
    m.zero_grad()
    m.reference(*args).square().sum().backward()
    assert_close(g_compiled, m.A_log.grad, 1e-4, "compiled dA_log")


def test_torch_compile_inductor(require_backend):
    require_backend("cpp")
    m = ScanBlock()
    args = _args(seed=3)
    out = torch.compile(m, fullgraph=True)(*args)
    assert_close(out, m.reference(*args), 1e-4, "inductor forward")


def test_torch_export_keeps_the_custom_op(require_backend):
    require_backend("cpp")
    m = ScanBlock()
    args = _args(seed=1)
    ep = torch.export.export(m, args)
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert any("effseg.selective_scan" in t for t in targets), targets
    assert_close(ep.module()(*args), m.reference(*args), 1e-4, "exported forward")


@pytest.fixture
def onnx_modules():
    onnx = pytest.importorskip("onnx", reason="onnx is not installed (the export extra)")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (the export extra)")
    pytest.importorskip("onnxscript", reason="onnxscript is not installed (the export extra)")
    return onnx, ort


@pytest.mark.parametrize("length", [1, 37, 130])
def test_onnx_export_runtime_parity(length, onnx_modules, tmp_path):
    _, ort = onnx_modules
    m = ScanBlock()
    args = _args(length=length, seed=length)
    path = tmp_path / "scan.onnx"
    proto = effseg.export.export_onnx(m, args, path)
    types = effseg.export.onnx_op_types(proto)
    assert not types & {"Loop", "Scan", "Einsum"}, types
    assert {"CumSum", "Exp", "MatMul"} <= types
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {i.name: a.numpy() for i, a in zip(sess.get_inputs(), args)}
    (got,) = sess.run(None, feeds)
    with torch.no_grad():
        want = m.reference(*args)
    assert_close(torch.from_numpy(got), want, 1e-4, "onnxruntime vs ref")


def test_onnx_export_rejects_non_tuple_args(onnx_modules, tmp_path):
    with pytest.raises(TypeError, match="args must be a tuple"):
        effseg.export.export_onnx(ScanBlock(), list(_args()), tmp_path / "x.onnx")
