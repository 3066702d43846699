"""effseg.export.guards: shape guards raised while lowering ops are checked across the
dynamic range, and to_onnx refuses an export that fixed a dynamic dimension."""
import pytest
import torch
from torch import nn

import effseg.export.onnx as onnx_export
from effseg.export import to_onnx
from effseg.export.guards import sample_shapes, violated_guards


@torch.library.custom_op("effseg_test::branchy", mutates_args=())
def branchy(x: torch.Tensor) -> torch.Tensor:
    return x * 2 if x.shape[-1] >= 4 else x * 3


@branchy.register_fake
def _(x):
    return torch.empty_like(x)


def _branchy_lowering(x):  # branches on the size, as a careless lowering would
    return x * 2 if x.shape[-1] >= 4 else x * 3


def _plain_lowering(x):
    return x * 2 + 0 * x.shape[-1]


class Net(nn.Module):
    in_channels = 3
    size_multiple = 1

    def forward(self, x):
        return torch.ops.effseg_test.branchy(x) + 1


def _decomposed(lowering):
    W = torch.export.Dim("W", min=1, max=64)
    ep = torch.export.export(Net(), (torch.randn(1, 3, 4, 8),), dynamic_shapes=({3: W},))
    return ep.run_decompositions({torch.ops.effseg_test.branchy.default: lowering})


def test_guard_from_a_lowering_is_found_at_the_shape_that_breaks_it():
    ep = _decomposed(_branchy_lowering)
    bad = violated_guards(ep, [(1, 3, 4, w) for w in (4, 8, 12, 3)])
    assert len(bad) == 1 and bad[0][1] == (1, 3, 4, 3), bad
    assert violated_guards(ep, [(1, 3, 4, w) for w in (4, 8, 64)]) == []


def test_clean_lowering_has_no_violated_guard():
    ep = _decomposed(_plain_lowering)
    assert violated_guards(ep, [(1, 3, 4, w) for w in range(1, 65)]) == []


def test_unevaluable_guard_is_reported_not_ignored():
    fake = type("Program", (), {})()
    fake._guards_code = ["L['x'].size()[2] == no_such_name"]
    assert violated_guards(fake, [(1, 3, 4, 4)]) == [(fake._guards_code[0], ())]


def test_to_onnx_refuses_a_dynamic_export_that_a_lowering_specialised(tmp_path, monkeypatch):
    table = onnx_export.decomposition_table()
    monkeypatch.setattr(onnx_export, "decomposition_table",
                        lambda: {**table, torch.ops.effseg_test.branchy.default: _branchy_lowering})
    with pytest.raises(RuntimeError, match=r"(?s)at input shape \[1, 3, 1, 1\].*>= 4.*fixed a dynamic dimension"):
        # The second-shape check (9 x 9) passes: only the guard's shapes show the defect.
        to_onnx(Net(), tmp_path / "b.onnx", input_shape=(1, 3, 8, 8), dynamic_hw=True, max_hw=32)
    with pytest.warns(UserWarning, match="check=False skipped checking those shapes"):
        to_onnx(Net(), tmp_path / "c.onnx", input_shape=(1, 3, 8, 8), dynamic_hw=True, max_hw=32, check=False)
    # The static export of the same net is fine: its shape is the traced one.
    rep = to_onnx(Net(), tmp_path / "s.onnx", input_shape=(1, 3, 8, 8))
    assert rep.parity["ok"]


def test_sample_shapes_cover_the_range():
    s = sample_shapes((1, 3, 64, 64), batch_max=64, hw_multiple=32, hw_max=2048)
    assert {x[0] for x in s} == {1, 2, 3, 4, 64}
    sides = {x[2] for x in s}
    assert min(sides) == 32 and max(sides) == 2048 and 32 * 16 in sides and 32 * 17 not in sides
    assert sample_shapes((2, 3, 40, 24), batch_max=None, hw_multiple=None, hw_max=2048) == [(2, 3, 40, 24)]
