"""effseg.compile: parity per backend on small nets, shape changes, the report, fallback."""
from __future__ import annotations

import warnings

import pytest
import torch
from compile_cases import NETS, WithControlFlow, seeded

import effseg
from effseg.compile import CompiledModel

# fp32 parity: the ParityError threshold is 1e-4 x output scale; tests hold the same.
TOL = 1e-4


def _close(got, want):
    scale = want.abs().max().item()
    assert got.shape == want.shape
    assert (got - want).abs().max().item() <= TOL * max(scale, 1e-12)


def _x(*shape, seed=1):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


CASES = [(b, n) for b in ("eager", "onnxruntime") for n in NETS] + [
    ("inductor", "conv_bn_relu"), ("inductor", "einsum_linear_attention")]


@pytest.mark.parametrize(("backend", "net"), CASES)
def test_parity_per_backend(backend, net):
    model = seeded(NETS[net]())
    x = _x(1, 3, 12, 10)
    cm = effseg.compile(model, example_input=x, backend=backend)
    assert isinstance(cm, CompiledModel) and cm.backend == backend
    with torch.no_grad():
        _close(cm(x), model(x))
        x2 = _x(1, 3, 12, 10, seed=2)  # same shape, other values: the graph is reused
        _close(cm(x2), model(x2))
    rep = cm.report()
    assert rep["parity"]["ok"] and rep["parity"]["rel_err"] <= TOL
    assert len(rep["specialisations"]) == 1 and not rep["fallback"]


@pytest.mark.parametrize("backend", ["eager", "onnxruntime"])
def test_shape_change_respecialises(backend):
    model = seeded(NETS["einsum_linear_attention"]())
    cm = effseg.compile(model, input_shape=(1, 3, 8, 8), backend=backend)
    x = _x(2, 3, 11, 13)
    with torch.no_grad():
        _close(cm(x), model(x))
        _close(cm(_x(1, 3, 8, 8)), model(_x(1, 3, 8, 8)))
    shapes = [s["shape"] for s in cm.report()["specialisations"]]
    assert shapes == [[1, 3, 8, 8], [2, 3, 11, 13]]
    assert all(s["parity"]["ok"] for s in cm.report()["specialisations"])


def test_dynamic_capture_covers_new_sizes():
    model = seeded(NETS["conv_bn_relu"]())
    cm = effseg.compile(model, input_shape=(2, 3, 8, 8), backend="eager", dynamic=True)
    spec = cm.report()["specialisations"][0]
    assert spec["dynamic_dims"] == [True, False, True, True]
    x = _x(3, 3, 10, 12)
    with torch.no_grad():
        _close(cm(x), model(x))
    assert len(cm.report()["specialisations"]) == 1  # no new capture for a covered shape


def test_report_contents():
    model = seeded(NETS["conv_bn_relu"]())
    cm = effseg.compile(model, input_shape=(1, 3, 8, 8), backend="eager")
    cm(_x(1, 3, 8, 8))
    rep = cm.report()
    assert rep["backend"] == "eager" and rep["device"] == "cpu" and rep["dtype"] == "float32"
    assert isinstance(rep["passes"], list) and all("pass" in r for r in rep["passes"])
    spec = rep["specialisations"][0]
    assert spec["capture_s"] >= 0 and spec["build_s"] >= 0 and spec["fallback"] is False
    assert {"max_abs_err", "scale", "rel_err", "tolerance", "ok"} <= set(rep["parity"])
    assert rep["calls"] == 1 and rep["auto"] is None
    assert cm.eager is model and cm.device == torch.device("cpu") and cm.dtype == torch.float32


def test_compile_leaves_model_untouched():
    model = seeded(NETS["conv_bn_relu"]()).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    effseg.compile(model, input_shape=(1, 3, 8, 8), backend="eager")
    assert model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


class _ScanNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        from effseg.nn.ss2d import SS2D

        self.inp = torch.nn.Conv2d(3, 8, 1)
        self.ss2d = SS2D(8, d_state=4)
        self.out = torch.nn.Conv2d(8, 2, 1)

    def forward(self, x):
        y = self.ss2d(self.inp(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.out(y)


@pytest.mark.parametrize("kind", ["ss2d", "mamba"])
def test_auto_on_cpu_cuts_a_scan_model_or_keeps_it_off_onnx(kind, monkeypatch):
    """A model with selective scans (SS2D or Mamba) on CPU goes to onnxruntime, cut at its
    scans (effseg's C++ scan runs them); without effseg._C its scans would be ONNX
    standard ops, 3-18x slower, so eager."""
    from effseg.nn.mamba import Mamba
    from effseg.runtime import native_scan

    if kind == "ss2d":
        model, shape = seeded(_ScanNet()), (1, 3, 6, 5)
    else:
        model, shape = seeded(torch.nn.Sequential(torch.nn.Conv1d(5, 8, 1), _Transpose(), Mamba(8, d_state=4))), (1, 5, 7)
    x = _x(*shape)
    cm = effseg.compile(model, input_shape=shape)
    auto = cm.report()["auto"]
    assert cm.backend == "onnxruntime" and "cut at its selective scans" in auto["reason"], auto
    assert "C++ scan at 1 scans" in cm.report()["specialisations"][0]["form"]
    with torch.no_grad():
        _close(cm(x), model(x))
    monkeypatch.setattr(native_scan, "available", lambda: False)
    cm = effseg.compile(model, input_shape=shape)
    assert cm.backend == "eager" and "selective scan" in cm.report()["auto"]["reason"]
    with torch.no_grad():
        _close(cm(x), model(x))


class _Transpose(torch.nn.Module):
    def forward(self, x):
        return x.transpose(1, 2)


def test_auto_default_and_trial():
    model = seeded(NETS["depthwise"]())
    cm = effseg.compile(model, input_shape=(1, 3, 8, 8))
    assert cm.backend == "onnxruntime" and cm.report()["auto"]["chosen"] == "onnxruntime"
    cm = effseg.compile(model, input_shape=(1, 3, 8, 8), trial=True)
    trial = cm.report()["auto"]["trial"]
    assert {"eager", "onnxruntime"} <= set(trial) and cm.backend in trial
    assert cm.backend == min(trial, key=lambda k: trial[k]["median_ms"])
    x = _x(1, 3, 8, 8)
    with torch.no_grad():
        _close(cm(x), model(x))


def test_fallback_warns_naming_the_module():
    model = seeded(WithControlFlow())
    with pytest.warns(RuntimeWarning, match=r"gate \(DataDependent\)"):
        cm = effseg.compile(model, input_shape=(1, 3, 8, 8), backend="onnxruntime")
    rep = cm.report()
    assert rep["fallback"] and rep["specialisations"][0]["failed_module"] == "gate (DataDependent)"
    # the rest of the model is still compiled, per submodule
    assert [p["module"] for p in rep["specialisations"][0]["parts"] if p["captured"]] == ["stem", "gate.conv"]
    with warnings.catch_warnings():
        # one RuntimeWarning, not one per shape (torch.export's own FutureWarnings while the
        # children are captured at a new shape are not effseg's)
        warnings.simplefilter("error", RuntimeWarning)
        for shape in [(1, 3, 8, 8), (1, 3, 8, 20)]:
            x = _x(*shape)
            with torch.no_grad():
                _close(cm(x), model(x))


def test_parity_error_on_broken_backend(monkeypatch):
    from effseg.compile import backends

    def broken(gm, example, *, device, options):
        return lambda x: gm(x) * (1 + 1e-3)

    monkeypatch.setitem(backends.BACKENDS, "eager", broken)
    with pytest.raises(effseg.ParityError, match="rel_err") as info:
        effseg.compile(seeded(NETS["conv_bn_relu"]()), input_shape=(1, 3, 8, 8), backend="eager")
    assert not info.value.figures["ok"] and info.value.figures["rel_err"] > TOL
    # check=False skips the comparison (the caller takes responsibility)
    effseg.compile(seeded(NETS["conv_bn_relu"]()), input_shape=(1, 3, 8, 8), backend="eager",
                   check=False)


def test_reduced_precision_parity_figures():
    model = seeded(NETS["conv_bn_relu"]())
    cm = effseg.compile(model, input_shape=(1, 3, 8, 8), backend="eager", dtype=torch.bfloat16)
    par = cm.report()["parity"]
    assert par["ok"] and par["argmax_agreement"] >= 0.995 and par["dtype"] == "bfloat16"
    assert cm(_x(1, 3, 8, 8)).dtype == torch.bfloat16


@pytest.mark.parametrize(("net", "pass_name"), [("conv_bn_relu", "fold_batchnorm"),
                                                ("einsum_linear_attention", "linear_attention")])
def test_passes_run_and_are_reported(net, pass_name):
    """effseg.passes rewrote the captured graph (the passes' own tests own the details);
    the report carries their records and parity still holds."""
    cm = effseg.compile(seeded(NETS[net]()), input_shape=(1, 3, 12, 10), backend="eager")
    changed = {r["pass"]: r["changed"] for r in cm.report()["passes"]}
    assert changed.get(pass_name, 0) >= 1, cm.report()["passes"]
    if pass_name == "linear_attention":
        gm = cm._entries[(1, 3, 12, 10)].runner
        targets = {n.target for n in gm.graph.nodes if n.op == "call_function"}
        assert torch.ops.effseg.linear_attention.default in targets
