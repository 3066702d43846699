"""ResT's softmax + InstanceNorm (BANet's backbone): computed from the scores without the
cancellation that made BANet's logits 3e-2 off in OpenVINO, in eager PyTorch and in an
exported graph alike."""
from __future__ import annotations

import pytest
import torch

from effseg.models.backbones import rest

EPS = 1e-5
# float32 against float64, relative to the output's largest value: the stable form
# measured 1.6e-7 to 5.1e-7 at these spreads (the plain form up to 4.5e-4).
TOL = 2e-6


def _plain(s: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """InstanceNorm2d(softmax(s)) as written in ResT (two-step means)."""
    p = s.softmax(-1)
    d = p - p.mean(-1, keepdim=True).mean(-2, keepdim=True)
    var = (d * d).mean(-1, keepdim=True).mean(-2, keepdim=True)
    return d * torch.rsqrt(var + eps)


def _rel(got, want) -> float:
    return float((got.double() - want).abs().max() / want.abs().max())


def _scores(spread: float) -> torch.Tensor:
    # Odd sizes: 3 heads, 37 queries, 29 keys.
    return torch.randn(2, 3, 37, 29, generator=torch.Generator().manual_seed(3)) * spread


@pytest.mark.parametrize("spread", [1e-4, 1e-2, 1.0, 30.0, 200.0])
def test_eager_matches_float64(spread):
    s = _scores(spread)
    want = _plain(s.double())
    assert _rel(rest._softmax_instance_norm(s, EPS), want) < TOL


def test_plain_float32_form_loses_digits_where_the_stable_one_does_not():
    # Why the rewrite exists: at a near-uniform softmax the plain form's rounding is
    # amplified ~1/sqrt(eps) times.
    s = torch.randn(1, 2, 512, 256, generator=torch.Generator().manual_seed(0)) * 1e-4
    want = _plain(s.double())
    assert _rel(_plain(s), want) > 30 * TOL
    assert _rel(rest._softmax_instance_norm(s, EPS), want) < TOL


@pytest.mark.parametrize("spread", [1e-4, 0.05, 3.0, 200.0])
def test_export_form_matches_float64(spread, monkeypatch):
    # Exporters have no expm1 (they write Exp - 1): the graph form goes through tanh.
    monkeypatch.setattr(torch.compiler, "is_exporting", lambda: True)
    s = _scores(spread)
    assert _rel(rest._softmax_instance_norm(s, EPS), _plain(s.double())) < TOL


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-13), (torch.float32, 1e-6)])
def test_expm1_export_form(dtype, rtol, monkeypatch):
    u = torch.tensor([-200.0, -50.0, -1.0, -0.1, -1e-3, -1e-7, -1e-30, 0.0], dtype=dtype)
    assert torch.equal(rest._expm1_nonpositive(u), torch.expm1(u))  # eager: expm1 itself
    monkeypatch.setattr(torch.compiler, "is_exporting", lambda: True)
    got = rest._expm1_nonpositive(u)
    assert torch.allclose(got, torch.expm1(u.double()).to(dtype), rtol=rtol, atol=0)


def test_onnx_runtime_runs_the_exported_form_to_float64(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from effseg.runtime.sessions import ort_session

    class Norm(torch.nn.Module):
        def forward(self, s):
            return rest._softmax_instance_norm(s, EPS)

    s = _scores(1e-4)
    path = tmp_path / "norm.onnx"
    torch.onnx.export(Norm().eval(), (s,), str(path), dynamo=True, opset_version=18, verbose=False)
    sess = ort_session(path, device="cpu", threads=1)
    (got,) = sess.run(None, {sess.get_inputs()[0].name: s.numpy()})
    want = _plain(s.double())
    assert _rel(torch.from_numpy(got), want) < TOL
