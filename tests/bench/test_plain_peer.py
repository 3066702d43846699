"""The ORT peer of a model built on effseg ops: torch.onnx cannot translate the custom
ops, so the peer exports the same weights with effseg's modules on their plain-PyTorch
reference (what a user without effseg runs)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from effseg.bench import contenders as C
from effseg.nn import LinearAttention

pytest.importorskip("onnxruntime", reason="the ORT peer needs onnxruntime (export extra)")


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.attn = LinearAttention(8)
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        return self.head(self.attn(self.conv(x)))


def test_plain_copy_switches_effseg_modules_and_keeps_outputs():
    torch.manual_seed(0)
    net = _Net().eval()
    with torch.no_grad():
        net.attn.gamma.fill_(0.5)  # open the residual gate so attention reaches the output
    plain, n = C.plain_copy(net)
    assert n == 1 and plain.attn.backend == "ref" and net.attn.backend != "ref"
    x = torch.randn(1, 3, 9, 7)
    with torch.no_grad():
        want, got = net(x), plain(x)
    assert (got - want).abs().max() <= 1e-5 * want.abs().max()


def test_ort_peer_falls_back_to_the_plain_form(tmp_path):
    import onnxruntime as ort

    torch.manual_seed(0)
    net = _Net().eval()
    with torch.no_grad():
        net.attn.gamma.fill_(0.5)
    x = torch.randn(1, 3, 16, 16)
    path = tmp_path / "peer.onnx"
    with pytest.raises(RuntimeError, match="effseg custom ops"):
        C.export_onnx_peer(net, x, path)
    how = C._export_peer_or_plain(net, x, path)
    assert "plain-PyTorch form (1 effseg modules" in how
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x2 = torch.randn(1, 3, 16, 16)
    got = torch.from_numpy(sess.run(None, {sess.get_inputs()[0].name: x2.numpy()})[0])
    with torch.no_grad():
        want = net(x2)
    assert (got - want).abs().max() <= 1e-4 * want.abs().max()


def _ctx(model, x):
    return C.Context(model=model, x=x, model_fp32=model, x_fp32=x, device="cpu", dtype="fp32", threads=1)


def test_scan_models_get_no_onnx_peer_instead_of_a_60s_timeout():
    import effseg

    scan = effseg.create_model("cmunet-tiny", 3).eval()
    plain = effseg.create_model("unetformer-dw", 3).eval()
    assert C.has_scan(scan) and not C.has_scan(plain)
    x = torch.randn(1, 3, 32, 32)
    for name in ("onnxruntime", "openvino"):
        with pytest.raises(C.Unsupported, match="selective scan"):
            C.BUILDERS[name](_ctx(scan, x))


def test_openvino_peer_matches_eager():
    pytest.importorskip("openvino", reason="openvino is not installed (pip install openvino)")
    torch.manual_seed(0)
    net = _Net().eval()
    with torch.no_grad():
        net.attn.gamma.fill_(0.5)
    x = torch.randn(1, 3, 16, 16)
    runner = C.BUILDERS["openvino"](_ctx(net, x))
    got = torch.from_numpy(runner.call())
    with torch.no_grad():
        want = net(x)
    assert got.shape == want.shape
    assert (got - want).abs().max() <= 1e-4 * want.abs().max()
    assert "plain-PyTorch form" in runner.info["exporter"] and runner.info["precision"] == "f32"
    with pytest.raises(C.Unsupported, match="fp16"):
        C.BUILDERS["openvino"](C.Context(model=net, x=x, model_fp32=net, x_fp32=x, device="cpu", dtype="fp16",
                                         threads=1))
    assert "openvino" in C.full_backends("cpu") and "openvino" not in C.full_backends("cuda")
