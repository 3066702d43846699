"""effseg.compile(backend="openvino"): parity with the model on odd shapes, one infer
request per thread, output buffers, its options and errors, and its autotune record.
Timings are injected (Tuner(measure=...)): nothing here depends on speed."""
from __future__ import annotations

import threading

import pytest
import torch
from compile_cases import NETS, seeded

pytest.importorskip("openvino", reason="openvino is not installed (pip install openvino; in the dev extra)")

import effseg
from effseg.compile import Tuner
from effseg.compile.backends import USABLE
from effseg.compile.capture import capture
from effseg.compile.tune_key import digest, tune_key
from effseg.runtime.sessions import openvino_model

TOL = 1e-4  # effseg's fp32 parity threshold, x output scale


def _x(*shape, seed=1):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _close(got, want):
    assert got.shape == want.shape and got.dtype == want.dtype
    assert (got - want).abs().max().item() <= TOL * max(want.abs().max().item(), 1e-12)


@pytest.mark.parametrize("net", sorted(NETS))
def test_parity_on_odd_shapes_and_a_new_shape(net):
    model = seeded(NETS[net]())
    x = _x(1, 3, 13, 9)
    cm = effseg.compile(model, example_input=x, backend="openvino", autotune=False)
    assert cm.backend == "openvino"
    with torch.no_grad():
        _close(cm(x), model(x))
        _close(cm(_x(1, 3, 13, 9, seed=2)), model(_x(1, 3, 13, 9, seed=2)))
        _close(cm(_x(2, 3, 7, 11)), model(_x(2, 3, 7, 11)))  # another shape: another build
    rep = cm.report()
    assert [s["shape"] for s in rep["specialisations"]] == [[1, 3, 13, 9], [2, 3, 7, 11]]
    assert all(s["parity"]["ok"] for s in rep["specialisations"])


def test_threads_each_get_their_own_request_and_answer():
    model = seeded(NETS["conv_bn_relu"]())
    cm = effseg.compile(model, input_shape=(1, 3, 16, 16), backend="openvino", autotune=False)
    errors, done = [], {}

    def work(i):
        xi = _x(1, 3, 16, 16, seed=10 + i)
        with torch.no_grad():
            want = model(xi)
            for _ in range(5):
                got = cm(xi)
                if (got - want).abs().max().item() > TOL * want.abs().max().item():
                    errors.append(i)
        done[i] = True

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(done) == 4 and not errors


def test_outputs_fresh_by_default_and_reused_when_asked():
    model = seeded(NETS["depthwise"]())
    x = _x(1, 3, 8, 8)
    fresh = effseg.compile(model, example_input=x, backend="openvino", autotune=False)
    reuse = effseg.compile(model, example_input=x, backend="openvino", autotune=False, reuse_outputs=True)
    with torch.no_grad():
        a, b = fresh(x), fresh(x)
        assert a.data_ptr() != b.data_ptr()
        c = reuse(x)
        d = reuse(_x(1, 3, 8, 8, seed=5))
        assert c.data_ptr() == d.data_ptr()  # overwritten by the same thread's next call
        _close(d, model(_x(1, 3, 8, 8, seed=5)))


def test_options_and_devices_are_checked():
    model = seeded(NETS["conv_bn_relu"]())
    with pytest.raises(TypeError, match=r"backend 'openvino' options must be among"):
        effseg.compile(model, input_shape=(1, 3, 8, 8), backend="openvino", intra_op_num_threads=1)
    with pytest.raises(ValueError, match=r"precision must be one of"):
        effseg.compile(model, input_shape=(1, 3, 8, 8), backend="openvino", precision="int4", autotune=False)
    ok, why = USABLE["openvino"](torch.device("cuda"))
    assert not ok and "CPU plugin" in why
    ok, why = USABLE["openvino"](torch.device("cpu"))
    assert ok and why == ""


def test_session_helper_errors(tmp_path):
    with pytest.raises(ValueError, match=r"precision must be one of \['f32', 'bf16', 'f16'\]"):
        openvino_model(tmp_path / "x.onnx", precision="fp32")
    with pytest.raises(ValueError, match=r"threads must be >= 0"):
        openvino_model(tmp_path / "x.onnx", threads=-1)


class _Timer:
    def __init__(self, times):
        self.times, self.calls = times, 0

    def __call__(self, calls, budget_s):
        self.calls += 1
        for fn in calls.values():
            fn()
        return {n: [self.times.get(n, 5.0)] * 3 for n in calls}


def test_autotune_keeps_the_plain_export_when_it_wins_and_files_it(tmp_path):
    model = seeded(NETS["conv_bn_relu"]())
    timer = _Timer({"plain": 1.0})
    cm = effseg.compile(model, input_shape=(1, 3, 8, 8), backend="openvino",
                        autotune=Tuner(cache_dir=tmp_path, measure=timer))
    rec = cm.report()["autotune"]
    assert rec["choice"] == "plain" and rec["source"] == "measured" and timer.calls == 1
    assert list(tmp_path.glob("openvino-*.json"))
    again = effseg.compile(model, input_shape=(1, 3, 8, 8), backend="openvino",
                           autotune=Tuner(cache_dir=tmp_path, measure=timer))
    assert again.report()["autotune"]["source"] == "cache" and timer.calls == 1
    with torch.no_grad():
        _close(again(_x(1, 3, 8, 8)), model(_x(1, 3, 8, 8)))


def test_tune_key_names_openvino_threads_and_precision():
    model = seeded(NETS["depthwise"]())
    x = torch.zeros(1, 3, 8, 8)
    gm = capture(model, x, torch.device("cpu"), run_passes=False).gm

    def key(**opts):
        return tune_key(gm, x, "openvino", opts, torch.device("cpu"), False)

    import openvino

    assert key()["machine"]["openvino"] == openvino.__version__
    assert key()["options"]["inference_num_threads"] == torch.get_num_threads()
    assert digest(key(inference_num_threads=1)) != digest(key(inference_num_threads=2))
    assert digest(key(precision="bf16")) != digest(key())
    assert digest(key()) != digest(tune_key(gm, x, "onnxruntime", {}, torch.device("cpu"), False))


class _Wide(torch.nn.Module):
    """A conv stack wide enough for the winograd_conv2d pass on this backend (128 channels)."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 128, 1)
        self.body = torch.nn.Sequential(torch.nn.Conv2d(128, 128, 3, padding=1), torch.nn.BatchNorm2d(128),
                                        torch.nn.ReLU(), torch.nn.Conv2d(128, 128, 3, padding=1))
        self.head = torch.nn.Conv2d(128, 4, 1)

    def forward(self, x):
        return self.head(torch.relu(self.body(self.stem(x))))


@pytest.mark.parametrize("hw,tile", [((18, 22), 2), ((34, 37), 4)])
def test_wide_convs_run_as_winograd_graphs(hw, tile):
    model = seeded(_Wide())
    x = _x(1, 3, *hw)
    cm = effseg.compile(model, example_input=x, backend="openvino", autotune=False)
    with torch.no_grad():
        _close(cm(x), model(x))
    rec = next(p for p in cm.report()["specialisations"][0]["passes"] if p["pass"] == "winograd_conv2d")
    assert rec["changed"] == 2 and rec["relu_fused"] == 2 and "channels >= 128" in rec["rule"]
    from effseg.export.winograd_conv2d import tile_size

    assert tile_size(hw[0], hw[1]) == tile
