"""effseg.compile's autotune: candidates built per shape, the fastest kept, the decision
filed on disk and reused. Timings are injected through Tuner(measure=...): nothing here
depends on how fast anything runs."""
from __future__ import annotations

import json

import pytest
import torch
from compile_cases import NETS, seeded

import effseg
from effseg.compile import Tuner
from effseg.compile.autotune import interleaved
from effseg.compile.capture import capture
from effseg.compile.tune_key import digest, tune_key

SHAPE = (1, 3, 8, 8)


class FakeTimer:
    """measure() stand-in: counts its calls and reports fixed times per candidate."""

    def __init__(self, times: dict | None = None, default: float = 5.0):
        self.times, self.default, self.calls, self.seen = times or {}, default, 0, []

    def __call__(self, calls, budget_s):
        self.calls += 1
        self.seen.append(sorted(calls))
        for fn in calls.values():  # the candidates really run
            fn()
        return {name: [self.times.get(name, self.default)] * 3 for name in calls}


def _compile(net, tuner, backend="eager", shape=SHAPE, **kw):
    return effseg.compile(seeded(NETS[net]()), input_shape=shape, backend=backend, autotune=tuner, **kw)


def _x(shape=SHAPE, seed=3):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_candidates_are_measured_and_the_decision_reported(tmp_path):
    timer = FakeTimer({"effseg": 1.0, "plain": 3.0, "without depthwise_conv2d": 2.0})
    cm = _compile("depthwise", Tuner(cache_dir=tmp_path, measure=timer))
    rec = cm.report()["autotune"]
    assert timer.calls == 1
    assert timer.seen == [["effseg", "plain", "without depthwise_conv2d"]]
    assert rec["choice"] == "effseg" and rec["source"] == "measured"
    assert rec["times_ms"] == {"effseg": 1.0, "plain": 3.0, "without depthwise_conv2d": 2.0}
    assert cm.report()["specialisations"][0]["autotune"] == rec
    changed = {p["pass"] for p in cm.report()["passes"] if p["changed"]}
    assert {"fold_batchnorm", "depthwise_conv2d"} <= changed
    with open(rec["file"]) as f:
        stored = json.load(f)
    assert stored["choice"] == "effseg" and stored["times_ms"] == rec["times_ms"]


def test_second_compile_reads_the_record_and_measures_nothing(tmp_path):
    first = FakeTimer({"without depthwise_conv2d": 0.5})
    cm1 = _compile("depthwise", Tuner(cache_dir=tmp_path, measure=first))
    second = FakeTimer()
    cm2 = _compile("depthwise", Tuner(cache_dir=tmp_path, measure=second))
    assert first.calls == 1 and second.calls == 0
    rec = cm2.report()["autotune"]
    assert rec["source"] == "cache" and rec["choice"] == "without depthwise_conv2d"
    assert rec["times_ms"] == cm1.report()["autotune"]["times_ms"]
    passes = {p["pass"]: p for p in cm2.report()["passes"]}
    assert passes["depthwise_conv2d"].get("skipped") and passes["fold_batchnorm"]["changed"]
    x = _x()
    with torch.no_grad():
        torch.testing.assert_close(cm2(x), cm1(x), rtol=1e-4, atol=1e-5)


def test_a_new_shape_is_a_new_decision(tmp_path):
    timer = FakeTimer()
    cm = _compile("depthwise", Tuner(cache_dir=tmp_path, measure=timer))
    with torch.no_grad():
        cm(_x((1, 3, 8, 12)))
    assert timer.calls == 2
    assert len(list(tmp_path.glob("eager-*.json"))) == 2


@pytest.mark.parametrize("backend", ["eager", "onnxruntime"])
def test_plain_model_is_chosen_when_it_wins(tmp_path, backend):
    timer = FakeTimer({"plain": 1.0})
    model = seeded(NETS["conv_bn_relu"]())
    cm = effseg.compile(model, input_shape=SHAPE, backend=backend,
                        autotune=Tuner(cache_dir=tmp_path, measure=timer))
    rep = cm.report()
    assert rep["autotune"]["choice"] == "plain"
    assert all(p.get("skipped") for p in rep["passes"])
    assert rep["parity"]["ok"]
    x = _x()
    with torch.no_grad():
        want = model(x)
        torch.testing.assert_close(cm(x), want, rtol=1e-4, atol=1e-5)
    if backend == "eager":  # plain eager is the user's model itself, weights copied
        assert isinstance(cm._entries[SHAPE].runner, type(model))


def test_no_candidate_when_no_pass_changes_the_graph(tmp_path):
    timer = FakeTimer()
    model = seeded(torch.nn.Conv2d(3, 4, 1))
    cm = effseg.compile(model, input_shape=SHAPE, backend="eager",
                        autotune=Tuner(cache_dir=tmp_path, measure=timer))
    rec = cm.report()["autotune"]
    assert timer.calls == 0 and rec["choice"] == "effseg" and rec["source"] == "single candidate"
    assert not list(tmp_path.iterdir())


def _valid_record(tmp_path):
    cm = _compile("conv_bn_relu", Tuner(cache_dir=tmp_path, measure=FakeTimer()))
    return cm.report()["autotune"]["file"]


def _corruptions():
    def edit(**changes):
        def apply(text):
            rec = json.loads(text)
            rec.update(changes)
            return json.dumps(rec)
        return apply

    def other_key(text):
        rec = json.loads(text)
        rec["key"]["input_shape"] = [1, 3, 99, 99]
        return json.dumps(rec)

    return {"not json": lambda t: t[: len(t) // 2], "a list": lambda t: "[1, 2]",
            "schema": edit(schema=999), "choice": edit(choice="mystery"),
            "times": edit(times_ms="fast"), "other key": other_key}


@pytest.mark.parametrize("kind", sorted(_corruptions()))
def test_an_invalid_record_is_ignored_with_a_warning_and_rewritten(tmp_path, kind):
    path = _valid_record(tmp_path)
    with open(path) as f:
        bad = _corruptions()[kind](f.read())
    with open(path, "w") as f:
        f.write(bad)
    timer = FakeTimer({"plain": 1.0})
    with pytest.warns(RuntimeWarning, match="ignoring the record"):
        cm = _compile("conv_bn_relu", Tuner(cache_dir=tmp_path, measure=timer))
    assert timer.calls == 1 and cm.report()["autotune"]["source"] == "measured"
    with open(path) as f:
        assert json.load(f)["choice"] == "plain"


def test_an_unwritable_cache_folder_warns_and_still_compiles(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.warns(RuntimeWarning, match="cannot write its record"):
        cm = _compile("depthwise", Tuner(cache_dir=blocker / "autotune", measure=FakeTimer()))
    assert cm.report()["autotune"]["file"] is None and cm.report()["parity"]["ok"]


def test_cache_false_measures_every_time(tmp_path):
    timer = FakeTimer()
    for _ in range(2):
        _compile("conv_bn_relu", Tuner(cache_dir=tmp_path, cache=False, measure=timer))
    assert timer.calls == 2 and not list(tmp_path.iterdir())


def _key(model, shape=SHAPE, backend="eager", options=None, dtype=torch.float32):
    x = torch.zeros(shape, dtype=dtype)
    gm = capture(model.to(dtype), x, torch.device("cpu"), run_passes=False).gm
    return digest(tune_key(gm, x, backend, options or {}, torch.device("cpu"), False))


def test_key_follows_shape_dtype_threads_options_and_model():
    model = seeded(NETS["depthwise"]())
    base = _key(model)
    assert _key(model) == base
    assert _key(model, shape=(1, 3, 8, 12)) != base
    assert _key(model, shape=(2, 3, 8, 8)) != base
    assert _key(seeded(NETS["depthwise"](c=16))) != base
    assert _key(seeded(NETS["conv_bn_relu"]())) != base
    assert _key(model, backend="onnxruntime") != base
    assert (_key(model, backend="onnxruntime", options={"intra_op_num_threads": 1})
            != _key(model, backend="onnxruntime", options={"intra_op_num_threads": 2}))
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(1 if n > 1 else 2)
        assert _key(model) != base
    finally:
        torch.set_num_threads(n)
    assert _key(seeded(NETS["depthwise"]()).double(), dtype=torch.float64) != base


def test_same_weights_structure_other_values_share_a_key():
    assert _key(seeded(NETS["depthwise"](), seed=0)) == _key(seeded(NETS["depthwise"](), seed=1))


def test_off_by_argument_and_by_variable(tmp_path, monkeypatch):
    timer = FakeTimer()
    cm = _compile("depthwise", False)
    assert cm.report()["autotune"] == {"choice": "effseg", "source": "off", "reason": "autotune=False"}
    monkeypatch.setenv("EFFSEG_AUTOTUNE", "off")
    cm = _compile("depthwise", None)
    assert cm.report()["autotune"]["reason"] == "EFFSEG_AUTOTUNE=off"
    cm = _compile("depthwise", Tuner(cache_dir=tmp_path, measure=timer))  # the argument wins
    assert timer.calls == 1 and cm.report()["autotune"]["source"] == "measured"


def test_on_by_default_with_records_under_effseg_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("EFFSEG_AUTOTUNE", raising=False)
    monkeypatch.setenv("EFFSEG_CACHE", str(tmp_path))
    cm = _compile("conv_bn_relu", None)
    rec = cm.report()["autotune"]
    assert rec["source"] == "measured" and set(rec["times_ms"]) == {"effseg", "plain"}
    assert all(n >= 3 for n in rec["runs"].values())
    assert rec["file"].startswith(str(tmp_path / "autotune"))


@pytest.mark.parametrize("value", ["maybe", "2"])
def test_a_bad_variable_is_a_clear_error(monkeypatch, value):
    monkeypatch.setenv("EFFSEG_AUTOTUNE", value)
    with pytest.raises(ValueError, match="EFFSEG_AUTOTUNE must be one of"):
        _compile("conv_bn_relu", None)


@pytest.mark.parametrize("arg, err, match", [
    ("yes", TypeError, "autotune must be None, a bool or an effseg.compile.Tuner"),
    (1, TypeError, "autotune must be None, a bool"),
])
def test_bad_autotune_argument(arg, err, match):
    with pytest.raises(err, match=match):
        _compile("conv_bn_relu", arg)


@pytest.mark.parametrize("kw, err, match", [
    ({"budget_s": 0}, ValueError, "budget_s must be a positive number"),
    ({"budget_s": True}, ValueError, "budget_s must be a positive number"),
    ({"build_budget_s": -1}, ValueError, "build_budget_s must be a positive number"),
    ({"cache_dir": 3}, TypeError, "cache_dir must be a path or None"),
    ({"cache": "yes"}, TypeError, "cache must be a bool"),
    ({"measure": 3}, TypeError, "measure must be callable or None"),
])
def test_bad_tuner_settings(kw, err, match):
    with pytest.raises(err, match=match):
        Tuner(**kw)


def test_a_timer_returning_nonsense_is_named(tmp_path):
    with pytest.raises(TypeError, match="Tuner measure must return"):
        _compile("conv_bn_relu", Tuner(cache_dir=tmp_path, measure=lambda calls, budget: {"effseg": []}))


def test_interleaved_alternates_the_order_and_times_at_least_three_rounds():
    order = []
    calls = {n: (lambda n=n: order.append(n)) for n in ("a", "b")}
    samples = interleaved(calls, budget_s=1e-9)
    # 3 rounds; each candidate called twice in a row (an untimed hand-over, then timed)
    assert order == ["a", "a", "b", "b", "b", "b", "a", "a", "a", "a", "b", "b"]
    assert {n: len(v) for n, v in samples.items()} == {"a": 3, "b": 3}
    assert all(t >= 0 for v in samples.values() for t in v)


def test_a_candidate_that_disagrees_is_rejected_not_chosen(tmp_path, monkeypatch):
    from effseg.passes import constant_fold

    real = constant_fold.run

    def corrupting(gm, device):  # a broken pass: effseg's graph now answers wrongly
        rec = real(gm, device)
        with torch.no_grad():
            next(iter(gm.parameters())).mul_(3.0)
        return rec

    monkeypatch.setattr(constant_fold, "run", corrupting)
    timer = FakeTimer({"effseg": 0.1})
    model = seeded(NETS["conv_bn_relu"]())
    cm = effseg.compile(model, input_shape=SHAPE, backend="eager",
                        autotune=Tuner(cache_dir=tmp_path, measure=timer))
    rec = cm.report()["autotune"]
    assert rec["choice"] == "plain" and "effseg" not in rec["times_ms"]
    assert rec["rejected"]["effseg"].startswith("ParityError")
    assert timer.seen == [["plain"]] and cm.report()["parity"]["ok"]


@pytest.mark.parametrize("effseg_ms, choice", [(0.99, "plain"), (0.97, "effseg")])
def test_a_rewrite_must_beat_plain_by_the_margin(tmp_path, effseg_ms, choice):
    """Within 2 % of plain (the default margin) the rewritten graph is not chosen: such
    a gap is inside a 2 s measurement's noise, and plain runs what the peer runs."""
    timer = FakeTimer({"effseg": effseg_ms, "plain": 1.0, "without depthwise_conv2d": 5.0})
    cm = _compile("depthwise", Tuner(cache_dir=tmp_path, measure=timer))
    rec = cm.report()["autotune"]
    assert rec["choice"] == choice and rec["margin"] == 0.02
    assert ("reason" in rec) == (choice == "plain")


@pytest.mark.parametrize("margin", [-0.1, 1.0, True, "2%"])
def test_tuner_margin_must_be_a_fraction(margin):
    with pytest.raises(ValueError, match="margin must be a fraction"):
        Tuner(margin=margin)


def test_inductor_is_tuned_between_effseg_and_plain_only(tmp_path):
    """A candidate costs an Inductor compile, so only the two ends are built: every pass,
    and none (what torch.compile with freezing would get)."""
    timer = FakeTimer({"effseg": 2.0, "plain": 1.0})
    cm = _compile("depthwise", Tuner(cache_dir=tmp_path, measure=timer), backend="inductor")
    rec = cm.report()["autotune"]
    assert timer.seen == [["effseg", "plain"]]
    assert rec["choice"] == "plain" and rec["source"] == "measured"
    x = _x()
    with torch.no_grad():
        got, want = cm(x), seeded(NETS["depthwise"]())(x)
    assert (got - want).abs().max() <= 1e-4 * want.abs().max()
