"""load_checkpoint on a small stand-in model (the zoo tests cover every real model)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from effseg.models import load_checkpoint


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))


@pytest.mark.parametrize("wrap", ["bare", "state_dict", "net.", "module.", "model."])
def test_accepted_forms(wrap, tmp_path):
    src, dst = _net(), nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))
    sd = src.state_dict()
    obj = {"bare": sd, "state_dict": {"state_dict": sd}}.get(wrap)
    if obj is None:
        obj = {"state_dict": {wrap + k: v for k, v in sd.items()}, "epoch": 1}
    torch.save(obj, tmp_path / "c.ckpt")
    res = load_checkpoint(dst, tmp_path / "c.ckpt")
    assert res.prefix == ("" if wrap in ("bare", "state_dict") else wrap)
    for k, v in dst.state_dict().items():
        assert torch.equal(v, sd[k]), k


def test_strict_error_lists_everything():
    m = _net()
    sd = dict(m.state_dict())
    sd.pop("0.bias")
    sd["2.weight"] = torch.zeros(3, 4, 1, 1)
    sd["head.extra"] = torch.zeros(2)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.raises(ValueError) as e:
        load_checkpoint(m, sd)
    msg = str(e.value)
    assert "missing keys (1): 0.bias" in msg
    assert "unexpected keys (1): head.extra" in msg
    assert "2.weight checkpoint [3, 4, 1, 1] vs model [2, 4, 1, 1]" in msg
    for k, v in m.state_dict().items():       # strict failure loads nothing
        assert torch.equal(v, before[k]), k


def test_non_strict_loads_the_rest():
    m, src = _net(), _net()
    with torch.no_grad():
        for p in src.parameters():
            p.add_(1)
    sd = dict(src.state_dict())
    sd["2.weight"] = torch.zeros(3, 4, 1, 1)
    res = load_checkpoint(m, sd, strict=False)
    assert [k for k, _, _ in res.mismatched] == ["2.weight"]
    assert torch.equal(m.state_dict()["0.weight"], src.state_dict()["0.weight"])
    assert not torch.equal(m.state_dict()["2.weight"], src.state_dict()["2.weight"])


def test_wrapper_extras_are_reported():
    m = _net()
    sd = {"state_dict": {**{"net." + k: v for k, v in m.state_dict().items()},
                         "loss.weight": torch.ones(6)}}
    with pytest.warns(UserWarning, match="loss.weight"):
        load_checkpoint(m, sd)


def test_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="model"):
        load_checkpoint("net", {})
    with pytest.raises(FileNotFoundError, match="path_or_state_dict"):
        load_checkpoint(_net(), tmp_path / "absent.ckpt")
    with pytest.raises(TypeError, match="path_or_state_dict"):
        load_checkpoint(_net(), 3)
    with pytest.raises(ValueError, match="state_dict"):
        load_checkpoint(_net(), {"epoch": 1})


class _Opaque:
    pass


def test_untrusted_pickle_needs_opt_in(tmp_path):
    m = _net()
    torch.save({"state_dict": m.state_dict(), "hparams": _Opaque()}, tmp_path / "h.ckpt")
    with pytest.raises(ValueError, match="trusted=True"):
        load_checkpoint(m, tmp_path / "h.ckpt")
