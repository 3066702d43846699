"""The per-shape cache is a bounded LRU (8 new shapes once added ~480 MB to one process),
and the compiled model keeps the weights it was compiled with."""
from __future__ import annotations

import pytest
import torch
from compile_cases import NETS, seeded

import effseg


def _x(*shape, seed=1):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _close(got, want):
    assert (got - want).abs().max().item() <= 1e-4 * want.abs().max().item()


@pytest.mark.parametrize("backend", ["eager", "onnxruntime"])
def test_max_shapes_evicts_least_recently_used(backend):
    model = seeded(NETS["conv_bn_relu"]())
    a, b, c = (1, 3, 8, 8), (1, 3, 8, 12), (1, 3, 12, 8)
    cm = effseg.compile(model, input_shape=a, backend=backend, max_shapes=2)
    with torch.no_grad():
        cm(_x(*b))
        cm(_x(*a))  # a is now the most recently used: b goes when c comes
        cm(_x(*c))
    rep = cm.report()
    assert rep["max_shapes"] == 2 and rep["evictions"] == 1
    assert rep["lru_order"] == [list(a), list(c)]
    assert sorted(s["shape"] for s in rep["specialisations"]) == [list(a), list(c)]
    x = _x(*b, seed=7)  # evicted: captured again, and right
    with torch.no_grad():
        _close(cm(x), model(x))
    rep = cm.report()
    assert rep["evictions"] == 2 and rep["lru_order"] == [list(c), list(b)]
    assert rep["specialisations"][-1]["parity"]["ok"]


def test_default_max_shapes_is_reported():
    cm = effseg.compile(seeded(NETS["conv_bn_relu"]()), input_shape=(1, 3, 8, 8), backend="eager")
    assert cm.report()["max_shapes"] == 8 and cm.report()["evictions"] == 0


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, "8", None])
def test_max_shapes_must_be_a_positive_int(bad):
    with pytest.raises(ValueError, match="max_shapes must be a positive int"):
        effseg.compile(seeded(NETS["conv_bn_relu"]()), input_shape=(1, 3, 8, 8), backend="eager",
                       max_shapes=bad)


@pytest.mark.parametrize("backend", ["eager", "onnxruntime"])
def test_weights_changed_after_compile_are_not_seen(backend):
    model = seeded(NETS["conv_bn_relu"]())
    x = _x(1, 3, 8, 8)
    cm = effseg.compile(model, example_input=x, backend=backend)
    with torch.no_grad():
        before = model(x)
        assert not cm.report()["weights"]["model_changed_since"]
        model.body[0].weight.mul_(2.0)  # in place, as an optimizer step or load_state_dict does
        assert not torch.allclose(model(x), before)
        _close(cm(x), before)
    assert cm.report()["weights"] == {"copied_at_compile": True, "model_changed_since": True}


def test_replaced_parameter_is_reported():
    model = seeded(NETS["conv_bn_relu"]())
    cm = effseg.compile(model, input_shape=(1, 3, 8, 8), backend="eager")
    model.body[4].bias = torch.nn.Parameter(torch.zeros(4))
    assert cm.report()["weights"]["model_changed_since"]
