"""effseg.compile's onnxruntime and openvino backends on a model with SS2D blocks: the
graph is cut at its cross selective scans, the engine runs the segments and effseg's C++
scan runs the scans. It must agree with the model on odd shapes, say so in report(),
hand out outputs no later call overwrites, serve several threads at once, and fall back
to the single standard-op graph where the native scan is missing."""
from __future__ import annotations

import importlib.util
import threading

import pytest
import torch

import effseg
from effseg.bench.mamba_runtime import TinySS2DNet
from effseg.compile.backends import scan_segments
from effseg.nn.mamba import Mamba
from effseg.runtime import native_scan

pytestmark = pytest.mark.skipif(not native_scan.available(),
                                reason=f"the cut form needs effseg._C: {native_scan.reason()}")
TOL = 1e-4  # effseg's fp32 parity rule, x output scale
ENGINES = ["onnxruntime", pytest.param("openvino", marks=pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None, reason="openvino is not installed (in the dev extra)"))]


def _x(*shape, seed=1):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _close(got, want):
    assert got.shape == want.shape and got.dtype == want.dtype
    assert (got - want).abs().max().item() <= TOL * want.abs().max().item()


class MambaNet(torch.nn.Module):
    """A conv, one Mamba block over the pixels (row-major, as PyramidMamba's), a conv."""

    def __init__(self, width: int = 8):
        super().__init__()
        torch.manual_seed(0)
        self.inp = torch.nn.Conv2d(3, width, 1)
        self.mamba = Mamba(width, d_state=4)
        self.out = torch.nn.Conv2d(width, 2, 1)

    def forward(self, x):
        f = self.inp(x)
        b, c, h, w = f.shape
        y = self.mamba(f.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(b, c, h, w)
        return self.out(y + f)


@pytest.fixture(scope="module")
def net():
    return TinySS2DNet().eval()


@pytest.mark.parametrize("backend", ENGINES)
@pytest.mark.parametrize("kind, scans", [("ss2d", 2), ("mamba", 1)])
def test_cut_at_the_scans_and_agrees_on_odd_shapes(backend, kind, scans, net):
    model = net if kind == "ss2d" else MambaNet().eval()
    for shape in ((1, 3, 18, 14), (2, 3, 10, 22)):
        x = _x(*shape)
        cm = effseg.compile(model, example_input=x, backend=backend, autotune=False)
        spec = cm.report()["specialisations"][-1]
        assert spec["form"].startswith(backend) and f"at {scans} scans" in spec["form"], spec
        with torch.no_grad():
            want = model(x)
            _close(cm(x), want)
            _close(cm(x.clone()), want)


@pytest.mark.parametrize("with_optional", [True, False])
def test_numpy_selective_scan_matches_the_op(with_optional):
    from effseg.ops import selective_scan

    g = torch.Generator().manual_seed(0)
    b, d, n, L = 2, 5, 3, 37
    u, delta, z = (torch.randn(b, d, L, generator=g) for _ in range(3))
    A = -torch.rand(d, n, generator=g) - 0.1
    B, C = torch.randn(b, n, L, generator=g), torch.randn(b, n, L, generator=g)
    D, bias = torch.randn(d, generator=g), torch.randn(d, generator=g) * 0.1
    opt = (D, z, bias) if with_optional else (None, None, None)
    want, want_last = selective_scan(u, delta, A, B, C, *opt, delta_softplus=True, return_last_state=True,
                                     backend="ref")
    y, last = native_scan.selective_scan(*(None if t is None else t.numpy() for t in (u, delta, A, B, C, *opt)),
                                         True)
    _close(torch.from_numpy(y), want)
    _close(torch.from_numpy(last), want_last.float())
    with pytest.raises(ValueError, match=r"B must have shape \(2, 3, 37\)"):
        native_scan.selective_scan(u.numpy(), delta.numpy(), A.numpy(), B[:, :, :-1].numpy(), C.numpy(),
                                   None, None, None, True)


@pytest.mark.parametrize("backend", ENGINES)
def test_outputs_outlive_the_next_call_and_threads_agree(backend, net):
    xs = [_x(1, 3, 16, 16, seed=s) for s in range(4)]
    cm = effseg.compile(net, example_input=xs[0], backend=backend, autotune=False)
    with torch.no_grad():
        wants = [net(x) for x in xs]
        first = cm(xs[0])
        cm(xs[1])  # an engine's own output buffers would now hold xs[1]'s result
        _close(first, wants[0])
        got, errors = [None] * 4, []

        def run(i):
            try:
                with torch.no_grad():
                    for _ in range(3):
                        got[i] = cm(xs[i])
            except Exception as exc:  # noqa: BLE001  reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors
    for g, w in zip(got, wants):
        _close(g, w)


def test_without_the_native_scan_the_graph_stays_whole(net, monkeypatch):
    gm_free = torch.fx.symbolic_trace(torch.nn.Conv2d(3, 2, 1))
    assert scan_segments.why_not(gm_free, torch.device("cpu")).startswith("no selective scan in the graph")
    monkeypatch.setattr(native_scan, "available", lambda: False)
    monkeypatch.setattr(native_scan, "reason", lambda: "effseg._C is missing (test)")
    x = _x(1, 3, 8, 8)
    cm = effseg.compile(net, example_input=x, backend="onnxruntime", autotune=False)
    assert "form" not in cm.report()["specialisations"][-1]
    with torch.no_grad():
        _close(cm(x), net(x))
