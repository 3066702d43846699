"""A training run on tiny data: files, checkpoint form, metrics, resume, KD."""
import json

import pytest
import torch
from train_data import TINY_NET

from effseg.models import create_model, load_checkpoint
from effseg.models.spec import build_model, resolve
from effseg.train import TrainConfig, train
from effseg.train.checkpoint import read_checkpoint


def _cfg(data, out, **kw):
    kw.setdefault("model", TINY_NET)
    kw.setdefault("epochs", 1)
    kw.setdefault("batch", 2)
    return TrainConfig(data=str(data), out=str(out), progress=False, **kw)


@pytest.fixture(scope="module")
def distance_run(tmp_path_factory):
    from train_data import make_dataset

    root = tmp_path_factory.mktemp("dist")
    data = make_dataset(root / "data")
    summary = train(_cfg(data, root / "run", loss="ce+distance", epochs=2))
    return data, root / "run", summary


def test_run_writes_files_and_metrics(distance_run):
    _, run, summary = distance_run
    for name in ("last.ckpt", "best.ckpt", "metrics.csv", "metrics.json"):
        assert (run / name).is_file(), name
    m = json.loads((run / "metrics.json").read_text())
    assert [e["epoch"] for e in m["epochs"]] == [1, 2]
    for e in m["epochs"]:
        for key in ("miou", "per_class_iou", "f1", "oa", "boundary_iou", "train_loss", "images_per_s"):
            assert e[key] is not None, key
        assert len(e["per_class_iou"]) == 3
        assert 0 < e["distance_share"] < 1
    t = m["distance_timing"]
    assert t["term"] == "distance" and 0 < t["distance_loss_s"] < t["step_s"] and t["share"] == pytest.approx(
        sum(e["distance_share"] for e in m["epochs"]) / 2)
    lines = (run / "metrics.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,train_loss,lr,miou") and "iou_2" in lines[0] and len(lines) == 3
    pytest.importorskip("matplotlib")
    assert (run / "curves.png").stat().st_size > 0


def test_checkpoint_is_geoseg_form_and_safe(distance_run):
    data, run, _ = distance_run
    obj = torch.load(run / "best.ckpt", weights_only=True)  # no pickled objects
    assert obj["state_dict"] and all(k.startswith("net.") for k in obj["state_dict"])
    meta = obj["effseg"]
    json.dumps(meta)  # plain JSON
    assert meta["architecture"] == TINY_NET and meta["num_classes"] == 3 and meta["in_channels"] == 3
    assert len(meta["normalize"]["mean"]) == 3 and meta["tile_size"] == 32 and meta["pixel_dtype"] == "uint8"
    model = build_model(TINY_NET, 3, 3, seed=123)
    load_checkpoint(model, run / "best.ckpt")  # strict, not trusted
    # resolve() needs no --arch for it
    spec = resolve(str(run / "best.ckpt"))
    for a, b in zip(spec.module.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)


def test_zoo_model_checkpoint_loads_into_create_model(tiny_data, tmp_path):
    train(_cfg(tiny_data, tmp_path / "run", model="bisenetv2"))
    model = create_model("bisenetv2", 3, seed=7)
    res = load_checkpoint(model, tmp_path / "run" / "last.ckpt")
    assert res.prefix == "net." and not res.missing
    saved = read_checkpoint(tmp_path / "run" / "last.ckpt")["state_dict"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, saved["net." + k]), k


def _params(path):
    return read_checkpoint(path)["state_dict"]


def test_resume_equals_uninterrupted(tiny_data, tmp_path):
    straight = tmp_path / "straight"
    train(_cfg(tiny_data, straight, epochs=2, crop=24, loss="ce+dice"))
    first = tmp_path / "first"
    train(_cfg(tiny_data, first, epochs=2, crop=24, loss="ce+dice", stop_after=1))
    assert read_checkpoint(first / "last.ckpt")["epoch"] == 1
    train(_cfg(tiny_data, first, epochs=2, crop=24, loss="ce+dice", resume=str(first / "last.ckpt")))
    a, b = _params(straight / "last.ckpt"), _params(first / "last.ckpt")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6, rtol=0), k
    # the updates were not all zero: the test can tell runs apart
    init = build_model(TINY_NET, 3, 3, seed=0).state_dict()
    assert any(not torch.allclose(a["net." + k], v, atol=1e-4) for k, v in init.items())
    ma = json.loads((straight / "metrics.json").read_text())["epochs"]
    mb = json.loads((first / "metrics.json").read_text())["epochs"]
    assert [e["epoch"] for e in mb] == [1, 2]
    flat = [v for e in ma for v in e["step_losses"]]
    assert flat == pytest.approx([v for e in mb for v in e["step_losses"]], rel=1e-6)


def test_different_seed_gives_different_weights(tiny_data, tmp_path):
    train(_cfg(tiny_data, tmp_path / "a", seed=1))
    train(_cfg(tiny_data, tmp_path / "b", seed=2))
    a, b = _params(tmp_path / "a" / "last.ckpt"), _params(tmp_path / "b" / "last.ckpt")
    assert any(not torch.allclose(a[k], b[k]) for k in a)


@pytest.mark.parametrize("kind", ["logit", "cwd", "boundary"])
def test_distillation_runs(distance_run, tmp_path, kind):
    data, teacher_run, _ = distance_run
    s = train(_cfg(data, tmp_path / kind, teacher=str(teacher_run / "best.ckpt"), kd=kind, kd_weight=2.0, tau=2.0,
                   kd_edge_weight=2.0, kd_body_weight=0.5))
    meta = read_checkpoint(tmp_path / kind / "best.ckpt")["effseg"]
    assert meta["kd"]["kind"] == kind and meta["kd"]["tau"] == 2.0
    assert s["epochs"][0]["train_loss"] > 0


def test_kd_term_changes_the_loss(distance_run, tmp_path):
    data, teacher_run, _ = distance_run
    plain = train(_cfg(data, tmp_path / "plain"))["epochs"][0]["step_losses"]
    kd = train(_cfg(data, tmp_path / "kd", teacher=str(teacher_run / "best.ckpt"), kd="logit",
                    kd_weight=5.0))["epochs"][0]["step_losses"]
    # same seed and data: the first step differs by the KD term alone, which is positive
    assert kd[0] > plain[0] + 1e-4
