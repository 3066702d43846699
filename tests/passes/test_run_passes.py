"""run_passes: the records effseg.compile reports, on a GeoSeg-style hand-written net and
on the model zoo (outputs within 1e-4 x output scale, eval)."""
from __future__ import annotations

import pytest
import torch
from geoseg_blocks import SoftplusAttention, TaylorAttention, randomise_batchnorms
from pass_cases import export_gm, rel_err, targets
from torch import nn
from zoo_cases import open_gates

from effseg.models import create_model, list_models
from effseg.passes import run_passes

aten = torch.ops.aten
ORDER = ["remove_dropout", "fold_batchnorm", "linear_attention", "depthwise_conv2d",
         "winograd_conv2d", "constant_fold"]
ZOO_TOL = 1e-4  # max |out - eager| / max |eager|, the fp32 parity bound
# Three zoo models cover every pass at run time (dropout, BN, depthwise, constant folding
# of Mamba's A = -exp(A_log)); the rest of the zoo is checked under the slow marker,
# each costing a torch.export of a full model (5-12 s on 2 cores).
FAST_ZOO = {"unetformer", "abcnet", "cmunet-tiny"}


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16),
                                  nn.ReLU(), nn.Dropout2d(0.1))
        self.dw = nn.Sequential(nn.Conv2d(16, 16, 5, padding=2, groups=16, bias=False),
                                nn.BatchNorm2d(16), nn.ReLU6())
        self.taylor = TaylorAttention(16)
        self.pam = SoftplusAttention(16)
        self.head = nn.Conv2d(16, 5, 1)

    def forward(self, x):
        y = self.dw(self.stem(x))
        if y.shape[-1] > 4:  # static Python control flow: traced away by export
            y = y + self.taylor(y)
        return self.head(self.pam(y))


def test_records_and_parity_on_a_geoseg_style_net(require_backend):
    require_backend("cpp")
    torch.manual_seed(0)
    m = randomise_batchnorms(_Net()).eval()
    x = torch.randn(2, 3, 9, 11)
    gm = export_gm(m, x)
    recs = run_passes(gm, "cpu")
    assert [r["pass"] for r in recs] == ORDER
    got = {r["pass"]: r["changed"] for r in recs}
    assert got == {"remove_dropout": 1, "fold_batchnorm": 2, "linear_attention": 2,
                   "depthwise_conv2d": 1, "winograd_conv2d": 0, "constant_fold": 0}
    ts = targets(gm)
    assert aten.einsum.default not in ts and aten.batch_norm.default not in ts
    assert ts.count(torch.ops.effseg.linear_attention.default) == 2
    with torch.no_grad():
        assert rel_err(gm(x), m(x)) < 1e-5


def test_nothing_to_do_reports_zeros():
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    gm = export_gm(m, torch.randn(1, 3, 6, 6))
    recs = run_passes(gm, torch.device("cpu"))
    assert all(r["changed"] == 0 for r in recs)


@pytest.mark.parametrize("name", [
    n if n in FAST_ZOO else pytest.param(n, marks=pytest.mark.slow) for n in list_models()])
def test_zoo_model_parity(name):
    torch.manual_seed(0)
    m = randomise_batchnorms(create_model(name, 6)).eval()
    open_gates(m, 0.5)  # attention gates start at 0, which would hide the attention path
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = m(x)
        gm = export_gm(m, x)
        recs = run_passes(gm, torch.device("cpu"))
        out = gm(x)
    assert sum(r["changed"] for r in recs) > 0
    assert rel_err(out, ref) <= ZOO_TOL, recs


def test_rewritten_graph_re_exports_and_follows_new_shapes(require_backend):
    # effseg.compile re-traces the rewritten module (inductor, ONNX) and feeds it other
    # batch / spatial sizes: the new nodes must carry example values and symbolic sizes.
    require_backend("cpp")
    torch.manual_seed(1)
    m = randomise_batchnorms(_Net()).eval()
    x = torch.randn(2, 3, 9, 11)
    dims = {"x": {0: torch.export.Dim("b", max=64), 2: torch.export.Dim("h", min=5, max=512),
                  3: torch.export.Dim("w", min=5, max=512)}}
    gm = torch.export.export(m, (x,), dynamic_shapes=dims).module()
    recs = run_passes(gm, "cpu")
    assert {r["pass"]: r["changed"] for r in recs}["linear_attention"] == 2
    again = torch.export.export(gm, (x,), dynamic_shapes=dims).module()
    for shape in [(2, 3, 9, 11), (1, 3, 6, 13), (3, 3, 16, 8)]:
        xs = torch.randn(*shape)
        with torch.no_grad():
            ref = m(xs)
            assert rel_err(gm(xs), ref) < 1e-5
            assert rel_err(again(xs), ref) < 1e-5


def _dw_net():
    return nn.Sequential(nn.Conv2d(3, 8, 1), nn.Conv2d(8, 8, 5, padding=2, groups=8, bias=False),
                         nn.BatchNorm2d(8)).eval()


def test_skip_leaves_one_pass_out_and_records_it():
    x = torch.randn(1, 3, 8, 8)
    m = randomise_batchnorms(_dw_net())
    gm = export_gm(m, x)
    recs = {r["pass"]: r for r in run_passes(gm, "cpu", skip={"depthwise_conv2d"})}
    assert recs["depthwise_conv2d"] == {"pass": "depthwise_conv2d", "changed": 0, "skipped": True}
    assert recs["fold_batchnorm"]["changed"] == 1
    assert torch.ops.effseg.depthwise_conv2d.default not in targets(gm)
    with torch.no_grad():
        assert rel_err(gm(x), m(x)) < 1e-5


def test_skip_must_name_passes():
    gm = export_gm(_dw_net(), torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"skip must name passes among .*'winograd'"):
        run_passes(gm, "cpu", skip={"winograd"})


@pytest.mark.parametrize("backend, swapped", [("eager", 1), ("onnxruntime", 0), ("tensorrt", 0)])
def test_depthwise_swap_only_for_graphs_pytorch_runs(backend, swapped):
    # Exported, the op lowers to the grouped Conv the untouched node exports to anyway.
    gm = export_gm(_dw_net(), torch.randn(1, 3, 8, 8))
    rec = {r["pass"]: r for r in run_passes(gm, "cpu", backend)}["depthwise_conv2d"]
    assert rec["changed"] == swapped
    if not swapped:
        assert rec["kept_because"] == {f"backend {backend}: exported as a grouped Conv either way": 1}
