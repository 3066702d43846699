"""effseg.export.winograd_conv2d: effseg::winograd_conv2d as a Winograd graph of standard
ONNX ops (effseg.compile's openvino backend), against F.conv2d in ONNX Runtime and
OpenVINO: both tile sizes, odd sizes that need a crop, every padding, bias and ReLU,
batch 2, and the plain Conv kept where the input's size is dynamic."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from effseg.export import winograd_conv2d as wg
from effseg.export.onnx import export_onnx
from effseg.ops.winograd_conv2d import winograd_weight
from effseg.runtime.sessions import ort_session

TOL = 1e-4  # relative to the output's largest value; F(4x4) in float32 is ~1e-5


class OneConv(torch.nn.Module):
    def __init__(self, c, k, pad, bias, relu):
        super().__init__()
        g = torch.Generator().manual_seed(c * 100 + k)
        self.w = torch.nn.Parameter(torch.randn(k, c, 3, 3, generator=g) / (3 * c ** 0.5))
        self.register_buffer("wt", winograd_weight(self.w.detach()))
        self.b = torch.nn.Parameter(torch.randn(k, generator=g)) if bias else None
        self.pad, self.relu = pad, relu

    def forward(self, x):
        return torch.ops.effseg.winograd_conv2d(x, self.w, self.wt, self.b, *self.pad, self.relu)

    def want(self, x):
        y = F.conv2d(x, self.w, self.b, padding=self.pad)
        return F.relu(y) if self.relu else y


def _ort(proto, x):
    s = ort_session(proto, device="cpu", threads=1, optimization="all", quiet=True)
    return s.run(None, {s.get_inputs()[0].name: x.numpy()})[0]


def _rel(got, want):
    want = want.detach().numpy()
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-6))


def _attr(node, name):
    return next(a for a in node.attribute if a.name == name)


# (channels in, out, batch, H, W, padding, bias, relu, expected tile size)
CASES = [
    (5, 7, 1, 9, 11, (1, 1), True, True, 2),      # 3 x 3 tiles of 4: F(2x2), crop 9 x 11
    (3, 4, 2, 10, 13, (0, 0), False, False, 2),   # no padding, batch 2
    (4, 6, 1, 12, 9, (2, 1), True, False, 2),     # asymmetric padding
    (6, 5, 1, 34, 37, (1, 1), True, False, 4),    # 8 x 9 tiles: F(4x4), crop 34 x 37
    (8, 8, 2, 32, 32, (1, 1), False, True, 4),    # whole tiles, batch 2
]


@pytest.mark.parametrize("c,k,n,h,w,pad,bias,relu,m", CASES)
def test_graph_matches_conv2d(tmp_path, c, k, n, h, w, pad, bias, relu, m):
    mod = OneConv(c, k, pad, bias, relu).eval()
    x = torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(1))
    proto = export_onnx(mod, (x,), tmp_path / "w.onnx", custom_translations=wg.translation_table())
    ops = [nd.op_type for nd in proto.graph.node]
    d2s = [nd for nd in proto.graph.node if nd.op_type == "DepthToSpace"]
    assert len(d2s) == 1 and _attr(d2s[0], "blocksize").i == m and _attr(d2s[0], "mode").s == b"DCR"
    assert ("Relu" in ops) == relu
    assert wg.tile_size(h + 2 * pad[0] - 2, w + 2 * pad[1] - 2) == m
    with torch.no_grad():
        want = mod.want(x)
    got = _ort(proto, x)
    assert got.shape == tuple(want.shape)
    assert _rel(got, want) < TOL


def test_openvino_runs_the_graph(tmp_path):
    pytest.importorskip("openvino", reason="openvino is not installed (pip install openvino; in the dev extra)")
    from effseg.runtime.sessions import openvino_model

    for c, k, n, h, w, pad, bias, relu, _ in (CASES[0], CASES[3]):
        mod = OneConv(c, k, pad, bias, relu).eval()
        x = torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(2))
        path = tmp_path / f"w{h}.onnx"
        export_onnx(mod, (x,), path, custom_translations=wg.translation_table())
        got = openvino_model(path, threads=1).create_infer_request().infer({0: x.numpy()})[0]
        with torch.no_grad():
            assert _rel(got, mod.want(x)) < TOL


def test_dynamic_size_keeps_the_plain_conv(tmp_path):
    mod = OneConv(4, 6, (1, 1), True, True).eval()
    x = torch.randn(1, 4, 16, 20)
    dim = torch.export.Dim("h", min=8, max=64)
    proto = export_onnx(mod, (x,), tmp_path / "d.onnx", dynamic_shapes={"x": {2: dim}},
                        custom_translations=wg.translation_table())
    ops = [nd.op_type for nd in proto.graph.node]
    assert "DepthToSpace" not in ops and ops.count("Conv") == 1
    for h in (16, 27):
        xi = torch.randn(1, 4, h, 20)
        with torch.no_grad():
            assert _rel(_ort(proto, xi), mod.want(xi)) < 1e-5


@pytest.mark.parametrize("h,w,m", [(7, 200, 2), (16, 16, 2), (32, 32, 4), (40, 20, 2), (36, 36, 4)])
def test_tile_size(h, w, m):
    assert wg.tile_size(h, w) == m


@pytest.mark.parametrize("tile", [2, 4])
def test_forced_tile_size(tmp_path, tile):
    """bench_winograd_conv2d_onnx forces each tile size on every layer: both stay exact."""
    mod = OneConv(6, 5, (1, 1), True, False).eval()
    x = torch.randn(1, 6, 11, 14, generator=torch.Generator().manual_seed(3))
    proto = export_onnx(mod, (x,), tmp_path / "f.onnx", custom_translations=wg.translation_table(tile))
    d2s = [nd for nd in proto.graph.node if nd.op_type == "DepthToSpace"]
    assert _attr(d2s[0], "blocksize").i == tile
    with torch.no_grad():
        assert _rel(_ort(proto, x), mod.want(x)) < TOL


def test_bad_tile_is_refused():
    with pytest.raises(ValueError, match="tile must be None, 2 or 4, got 3"):
        wg.translation_table(3)
