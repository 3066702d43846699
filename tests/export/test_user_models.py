"""Models written the way users write them (tests/helpers/user_models.py) export with ORT
parity and no op TensorRT 10.3 rejects, compile with parity, and what cannot be exported
is refused naming the module, the op and what to change."""
import warnings

import pytest
import torch

import effseg
from effseg._parity import ParityError
from effseg.export import check_tensorrt, fatal, to_onnx
from effseg.export.diagnose import ExportError
from effseg.export.onnx import rewrite_user_graph
from effseg.export.resize import _resize_matrices
from effseg.passes.einsum import einsum_as_matmul
from tests.helpers import user_models as um

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _model(name):
    ctor, shape = um.CORPUS[name]
    torch.manual_seed(0)
    return ctor().eval(), shape


@pytest.mark.parametrize("name", sorted(um.CORPUS))
def test_corpus_exports_with_ort_parity_and_parses_in_tensorrt(name, tmp_path):
    model, shape = _model(name)
    path = tmp_path / f"{name}.onnx"
    rep = to_onnx(model, path, input_shape=shape)  # ORT parity is checked inside (ParityError)
    assert rep.parity["rel_err"] <= 1e-4, rep.parity
    assert "Einsum" not in rep.op_counts
    assert fatal(check_tensorrt(path, trt_version="10.3")) == []


@pytest.mark.parametrize("name", sorted(um.CORPUS))
def test_corpus_compiles_with_parity(name):
    model, shape = _model(name)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(3))
    cm = effseg.compile(model, example_input=x, backend="eager")  # check=True raises on disagreement
    assert not cm.report()["fallback"]
    with torch.no_grad():
        assert torch.allclose(cm(x), model(x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["einsum_mix", "bilateral", "psp_head"])
def test_corpus_compiles_on_onnxruntime(name):
    model, shape = _model(name)
    cm = effseg.compile(model, input_shape=shape, backend="onnxruntime")
    assert cm.report()["parity"]["rel_err"] <= 1e-4


@pytest.mark.parametrize("eq,shapes", [
    ("bcn,bn->bcn", [(2, 3, 5), (2, 5)]), ("bnm,bmc,bn->bcn", [(2, 5, 4), (2, 4, 3), (2, 5)]),
    ("bhdn,bhdm->bhnm", [(2, 2, 3, 5), (2, 2, 3, 6)]), ("bcc->bc", [(2, 3, 3)]), ("ii", [(3, 3)]),
    ("...chw->...hw", [(2, 3, 4, 5)]), ("ij,jk", [(3, 4), (4, 5)]), ("bij,bjk->bik", [(1, 3, 4), (5, 4, 2)]),
    ("b...,b...->b", [(2, 3, 4), (2, 3, 4)]), ("oc,bchw,o->bohw", [(4, 3), (2, 3, 5, 6), (4,)]),
])
def test_einsum_as_matmul_matches_torch(eq, shapes):
    g = torch.Generator().manual_seed(0)
    ops = [torch.randn(s, generator=g) for s in shapes]
    torch.testing.assert_close(einsum_as_matmul(eq, ops), torch.einsum(eq, *ops), atol=1e-5, rtol=1e-5)


def test_geoseg_style_attention_becomes_linear_attention_on_the_export_path():
    model, shape = _model("einsum_taylor")
    x = torch.randn(shape)
    ep = torch.export.export(model, (x,))
    records = []
    out = rewrite_user_graph(ep, (x,), records=records)
    assert records[0]["pass"] == "linear_attention" and records[0]["taylor"] == 1, records
    targets = {str(n.target) for n in out.graph.nodes}
    assert "effseg.linear_attention.default" in targets and "aten.einsum.default" not in targets


@pytest.mark.parametrize("op", ["_upsample_bilinear2d_aa", "_upsample_bicubic2d_aa", "upsample_bicubic2d"])
@pytest.mark.parametrize("ac", [False, True])
@pytest.mark.parametrize("size,scales", [((7, 6), None), ((24, 20), None), (None, [0.3, 0.3]), (None, [1.7, 0.45])])
def test_resampling_matrices_reproduce_pytorch(op, ac, size, scales):
    x = torch.randn(1, 2, 12, 10, dtype=torch.float64)
    fn_op = getattr(torch.ops.aten, op)

    def fn(t, s, sc):
        return fn_op.default(t, list(s), ac, sc[0], sc[1])
    a_h, a_w = _resize_matrices(x, size, scales, fn)
    torch.testing.assert_close(a_h @ x @ a_w.t(), fn_op.vec(x, size, ac, scales), atol=1e-12, rtol=0)


def test_dynamic_window_attention_with_padding_branch_exports(tmp_path):
    rep = to_onnx(um.WindowAttention().eval(), tmp_path / "w.onnx", input_shape=(1, 8, 64, 64), dynamic_hw=True)
    assert rep.parity["second_shape"]["rel_err"] <= 1e-4


@pytest.mark.parametrize("model,kw,words", [
    (lambda: um.Grown("bicubic"), {"dynamic_hw": True}, ["<root> (Grown)", "aten.upsample_bicubic2d", "fixed"]),
    (lambda: um.Grown("bilinear", antialias=True), {"dynamic_hw": True}, ["_upsample_bilinear2d_aa", "antialias"]),
    (lambda: um.Grown(pool=(4, 8)), {"dynamic_hw": True}, ["adaptive_avg_pool2d", "4x8", "dynamic_hw=False"]),
    (um.MaxIndices, {}, ["MaxIndices", "return_indices"]),
    (um.PartlyTraceable, {}, ["branch (ValueBranch)", "torch.export could not trace", "torch.where"]),
])
def test_refusals_name_module_op_and_what_to_change(model, kw, words, tmp_path):
    shape = (1, 3, 64, 64) if kw.get("dynamic_hw") else (1, 3, 12, 12)
    with pytest.raises(ExportError) as info:
        to_onnx(model().eval(), tmp_path / "m.onnx", input_shape=shape, **kw)
    msg = str(info.value)
    assert "what you can change" in msg and "Traceback" not in msg
    for w in words:
        assert w in msg, msg


def test_python_size_branch_in_user_code_is_refused_with_its_guard(tmp_path):
    with pytest.raises(ParityError, match=r"size\(\)\[3\].*64|64.*size\(\)\[3\]"):
        to_onnx(um.SizeGate().eval(), tmp_path / "g.onnx", input_shape=(1, 3, 64, 64), dynamic_hw=True)


def test_compile_falls_back_per_submodule():
    torch.manual_seed(0)
    model = um.PartlyTraceable().eval()
    x = torch.randn(1, 3, 16, 16)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        cm = effseg.compile(model, example_input=x, backend="eager")
    msgs = [str(w.message) for w in rec if issubclass(w.category, RuntimeWarning)]
    assert any("branch (ValueBranch)" in m and "one by one" in m for m in msgs), msgs
    parts = {p["module"]: p for p in cm.report()["specialisations"][0]["parts"]}
    assert {"stem", "branch.a", "body", "head"} <= {m for m, p in parts.items() if p["captured"]}
    la = next(r for r in parts["body"]["passes"] if r["pass"] == "linear_attention")
    assert la["taylor"] == 1
    for sign in (1.0, -1.0):  # both sides of the value branch
        xi = sign * (x.abs() + 0.5)
        with torch.no_grad():
            torch.testing.assert_close(cm(xi), model(xi), atol=1e-4, rtol=1e-4)
