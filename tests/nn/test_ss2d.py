"""effseg.nn.SS2D against a plain-PyTorch composition of its parts (VMamba's own order)."""
import pytest
import torch
import torch.nn.functional as F

from effseg.nn import SS2D
from effseg.nn.ss2d import ss2d_core_composed


def _composed_forward(m: SS2D, x, backend="ref"):
    b, H, W, _ = x.shape
    xx, z = m.in_proj(x).chunk(2, dim=-1)
    xx = F.silu(F.conv2d(xx.permute(0, 3, 1, 2), m.conv2d.weight, m.conv2d.bias,
                         padding=m.conv2d.padding, groups=m.d_inner))
    y = ss2d_core_composed(m, xx, backend).transpose(1, 2).reshape(b, H, W, m.d_inner)
    return m.out_proj(F.layer_norm(y, (m.d_inner,), m.out_norm.weight, m.out_norm.bias,
                                   m.out_norm.eps) * F.silu(z))


def _model(d_model=8, d_state=4, seed=0, **kw):
    torch.manual_seed(seed)
    m = SS2D(d_model, d_state=d_state, **kw).eval()
    with torch.no_grad():  # away from the init's symmetric values, so every term matters
        m.A_logs.add_(0.3 * torch.randn_like(m.A_logs))
        m.Ds.add_(0.5 * torch.randn_like(m.Ds))
        m.out_norm.weight.add_(0.2 * torch.randn_like(m.out_norm.weight))
    return m


@pytest.mark.parametrize("H,W", [(1, 1), (5, 3), (8, 8), (7, 12)])
def test_inference_matches_the_composition(require_backend, H, W):
    require_backend("cpp")
    m = _model()
    x = torch.randn(2, H, W, 8)
    with torch.no_grad():
        got = m(x)
        want = _composed_forward(m.double(), x.double())
        m.float()
    assert got.shape == (2, H, W, 8)
    err = (got.double() - want).abs().max() / want.abs().max()
    assert err < 2e-5, err


def test_training_gradients_match_the_composition():
    m = _model(d_model=4, d_state=2, backend="chunked").double()
    x = torch.randn(1, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    out = m(x)
    g = torch.randn_like(out)
    grads = torch.autograd.grad(out, [x, *m.parameters()], g)
    ref_out = _composed_forward(m, x, backend="ref")
    ref_grads = torch.autograd.grad(ref_out, [x, *m.parameters()], g)
    assert torch.allclose(out, ref_out, rtol=1e-9, atol=1e-10)
    for a, b in zip(grads, ref_grads):
        assert torch.allclose(a, b, rtol=1e-7, atol=1e-9)


def test_vmamba_parameter_names_and_shapes():
    m = SS2D(96, d_state=16, expand=2.0)
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    d, R = 192, 6
    assert shapes["in_proj.weight"] == (2 * d, 96)
    assert shapes["conv2d.weight"] == (d, 1, 3, 3) and shapes["conv2d.bias"] == (d,)
    assert shapes["x_proj_weight"] == (4, R + 32, d)
    assert shapes["dt_projs_weight"] == (4, d, R) and shapes["dt_projs_bias"] == (4, d)
    assert shapes["A_logs"] == (4 * d, 16) and shapes["Ds"] == (4 * d,)
    assert shapes["out_norm.weight"] == (d,) and shapes["out_proj.weight"] == (96, d)
    # A VMamba state dict (same names) loads strictly.
    SS2D(96, d_state=16).load_state_dict(m.state_dict(), strict=True)


def test_compile_fullgraph(require_backend):
    require_backend("cpp")
    m = _model()
    x = torch.randn(1, 5, 6, 8)
    with torch.no_grad():
        want = m(x)
        got = torch.compile(m, fullgraph=True, backend="aot_eager")(x)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-6)


def test_onnx_export_matches(require_backend, tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime (the export extra) is not installed")
    require_backend("cpp")
    import onnx
    import onnxruntime as ort

    from effseg.export import export_onnx
    from effseg.export.onnx import FORBIDDEN_OPS, onnx_op_types

    m = _model()
    x = torch.randn(1, 6, 5, 8)
    path = tmp_path / "ss2d.onnx"
    export_onnx(m, (x,), path)
    assert not (onnx_op_types(onnx.load(str(path))) & FORBIDDEN_OPS)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        want = m(x)
    assert abs(got - want.numpy()).max() / abs(want.numpy()).max() < 1e-4


def test_bad_input():
    m = SS2D(8)
    with pytest.raises(ValueError, match="channels-last"):
        m(torch.randn(1, 8, 4, 4))
    with pytest.raises(ValueError, match="d_model"):
        SS2D(0)
