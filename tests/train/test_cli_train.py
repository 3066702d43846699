"""`effseg train` / `effseg evaluate` from the command line: errors, JSON, bundle parity."""
import json

import numpy as np
import pytest
from PIL import Image
from train_data import TINY_NET, make_dataset

from effseg.cli import main


def _train(data, out, *extra):
    return main(["train", "--model", TINY_NET, "--data", str(data), "--out", str(out), "--epochs", "1",
                 "--batch", "2", "--no-progress", *extra])


def _error(capsys, rc, *words):
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err and err.startswith("effseg train: error:"), err
    for w in words:
        assert w in err, err


def test_missing_mask(tiny_data, tmp_path, capsys):
    (tiny_data / "train" / "masks" / "t1.png").unlink()
    _error(capsys, _train(tiny_data, tmp_path / "run"), "no mask for image", "t1.png")


def test_mismatched_sizes(tiny_data, tmp_path, capsys):
    Image.fromarray(np.zeros((30, 32), np.uint8)).save(tiny_data / "train" / "masks" / "t2.png")
    _error(capsys, _train(tiny_data, tmp_path / "run"), "30x32", "expected the same size")


def test_label_not_below_num_classes(tiny_data, tmp_path, capsys):
    _error(capsys, _train(tiny_data, tmp_path / "run", "--num-classes", "2"), "label(s) [2]", "0..1")


def test_empty_split(tiny_data, tmp_path, capsys):
    for f in (tiny_data / "val" / "images").iterdir():
        f.unlink()
    _error(capsys, _train(tiny_data, tmp_path / "run"), "split 'val'", "holds no images")


def test_bad_option(tiny_data, tmp_path, capsys):
    _error(capsys, _train(tiny_data, tmp_path / "run", "--teacher", "x.ckpt"), "--teacher and --kd go together")
    _error(capsys, _train(tiny_data, tmp_path / "run", "--batch", "0"), "--batch must be")


def test_evaluate_json_and_bundle_parity(tmp_path, capsys):
    # Validation images larger than the 32-pixel tile and not multiples of it: both paths tile.
    data = make_dataset(tmp_path / "data", val_size=(40, 52))
    run = tmp_path / "run"
    assert _train(data, run, "--epochs", "2", "--lr", "0.01") == 0
    out = tmp_path / "ckpt.json"
    assert main(["evaluate", str(run / "best.ckpt"), "--data", str(data), "--json", str(out), "--no-progress"]) == 0
    ck = json.loads(out.read_text())
    for key in ("miou", "per_class_iou", "f1", "oa", "boundary_iou"):
        assert key in ck
    assert len(ck["per_class_iou"]) == 3 and ck["source"] == "checkpoint" and ck["images"] == 2
    best = json.loads((run / "metrics.json").read_text())["best_miou"]
    assert ck["miou"] == pytest.approx(best, abs=1e-9)  # validation is the same path
    assert main(["export", str(run / "best.ckpt"), "--out", str(tmp_path / "bundle"), "--no-progress"]) == 0
    meta = json.loads((tmp_path / "bundle" / "meta.json").read_text())
    assert meta["input"]["height"] == 32 and meta["num_classes"] == 3
    trained = json.loads((run / "metrics.json").read_text())["meta"]["normalize"]
    assert meta["normalize"]["mean"] == pytest.approx(trained["mean"])
    bout = tmp_path / "bundle.json"
    assert main(["evaluate", str(tmp_path / "bundle"), "--data", str(data), "--json", str(bout),
                 "--no-progress"]) == 0
    bu = json.loads(bout.read_text())
    assert bu["source"] == "bundle"
    assert abs(bu["miou"] - ck["miou"]) < 0.01
    assert abs(bu["boundary_iou"] - ck["boundary_iou"]) < 0.01
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "nothing"), "--data", str(data)]) == 2
    assert "neither a checkpoint file nor a bundle folder" in capsys.readouterr().err
