"""effseg/bench/train.py (bench/bench_train.py): the pure parts, and the JSON of a run with
effseg's train/evaluate stubbed (the forest and the plain loop run for real on tiny data)."""
import json
from argparse import Namespace

import numpy as np
import pytest

from effseg.bench import train as bt


def test_summary_is_mean_and_sample_std_per_dataset_and_config():
    runs = [
        {"dataset": "a", "config": "alone", "seed": 1, "miou": 0.5, "boundary_iou": 0.2, "oa": 0.9, "steps": 10,
         "per_class_iou": [0.4, 0.6]},
        {"dataset": "a", "config": "alone", "seed": 0, "miou": 0.7, "boundary_iou": None, "oa": 0.8, "steps": 12,
         "per_class_iou": [0.6, 0.8]},
        {"dataset": "a", "config": "kd-logit", "seed": 0, "miou": 0.6, "boundary_iou": 0.3, "oa": 0.85, "steps": 8,
         "per_class_iou": None},
        {"dataset": "b", "config": "alone", "seed": 0, "miou": 0.1, "boundary_iou": 0.1, "oa": 0.5, "steps": 3},
    ]
    s = bt.summarize(runs)
    assert set(s) == {"a", "b"} and set(s["a"]) == {"alone", "kd-logit"}
    alone = s["a"]["alone"]
    assert alone["miou"]["mean"] == pytest.approx(0.6) and alone["miou"]["n"] == 2
    assert alone["miou"]["std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert alone["boundary_iou"] == {"mean": 0.2, "std": None, "n": 1}  # None (no boundary) is left out
    assert alone["steps"]["mean"] == pytest.approx(11)
    assert alone["per_class_iou"] == pytest.approx([0.5, 0.7]) and alone["seeds"] == [0, 1]
    assert s["a"]["kd-logit"]["miou"]["std"] is None and s["a"]["kd-logit"]["per_class_iou"] is None
    assert s["b"]["alone"]["miou"]["mean"] == pytest.approx(0.1)


def test_pixel_features_are_bands_then_local_means():
    img = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)  # 2 bands, 3 x 4
    f = bt.pixel_features(img, windows=(3,))
    assert f.shape == (12, 4) and f.dtype == np.float32
    assert np.array_equal(f[:, :2], img.reshape(2, -1).T)  # pixel (row-major) x band
    # pixel (1, 1) (index 5): the mean of band 0's rows 0-2, columns 0-2
    assert f[5, 2] == pytest.approx(img[0, 0:3, 0:3].mean())
    # a corner averages only what is inside the image
    assert f[0, 3] == pytest.approx(img[1, 0:2, 0:2].mean())
    assert f[11, 2] == pytest.approx(img[0, 1:3, 2:4].mean())


def test_settings_quick_and_plan_scale_with_budget_and_seeds():
    base = {"quick": False, "budget": None, "seeds": None, "datasets": None, "teacher_budget": None}
    s = bt.settings(Namespace(**base))
    assert (s["budget"], s["seeds"], s["datasets"], s["teacher_budget"]) == (45.0, 3, ["buildings", "landcover"], 90.0)
    p = bt.plan(s)
    assert p["student_runs"] == 2 * 3 * len(bt.CONFIGS) and p["training_budget_s"] == 2 * 90 + 30 * 45
    p2 = bt.plan(bt.settings(Namespace(**{**base, "budget": 90, "seeds": 6})))
    assert p2["training_budget_s"] == 2 * 180 + 60 * 90
    q = bt.settings(Namespace(**{**base, "quick": True, "seeds": 2}))
    assert q["budget"] == 3 and q["seeds"] == 2 and len(q["datasets"]) == 1 and q["rf_pixels"] == 2000
    with pytest.raises(ValueError, match="datasets"):
        bt.settings(Namespace(**{**base, "datasets": "buildings,mars"}))


def _tiny_dataset(root, n_train=3, n_val=2, size=64):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_val)):
        (root / split / "images").mkdir(parents=True)
        (root / split / "masks").mkdir(parents=True)
        for i in range(n):
            mask = np.zeros((size, size), np.uint8)
            mask[:, size // 2:] = 1
            img = (rng.integers(0, 60, (size, size, 3)) + 150 * mask[..., None]).astype(np.uint8)
            Image.fromarray(img).save(root / split / "images" / f"t{i}.png")
            Image.fromarray(mask).save(root / split / "masks" / f"t{i}.png")
    (root / "classes.json").write_text(json.dumps({"classes": ["bg", "fg"]}))


def test_run_with_stubbed_training_gives_the_full_json(tmp_path, monkeypatch):
    root = tmp_path / "data"
    _tiny_dataset(root)
    cfgs, evaluated = [], []

    def fake_train(cfg):
        cfgs.append(cfg)
        return {"epochs": [{"steps": 1, "images_per_s": 30.0, "epoch_s": 0.1}] * (cfg.epochs or 2)}

    def fake_evaluate(path, data, split, device="auto"):
        evaluated.append((str(path), split))
        return {"miou": 0.4, "boundary_iou": 0.2, "oa": 0.9, "f1": 0.5, "per_class_iou": [0.3, 0.5]}

    monkeypatch.setattr(bt, "fetch_sample", lambda name: {"root": str(root), "split": "left/right", "train": 3,
                                                          "val": 2, "tile": 64, "classes": ["bg", "fg"]})
    monkeypatch.setattr(bt, "effseg_train", fake_train)
    monkeypatch.setattr(bt, "evaluate", fake_evaluate)
    args = Namespace(quick=True, device="cpu", runs_dir=None, markdown=str(tmp_path / "s.md"), budget=None,
                     seeds=2, datasets=None, student=None, teacher=None, teacher_budget=None, rf_pixels=None,
                     rf_trees=None)
    result = bt.run(args)
    result = json.loads(json.dumps(result))  # plain JSON throughout
    ds = "landcover"
    assert result["op"] == "train" and "isa" in result["machine"] and "method" in result
    assert result["data"][ds]["split"] == "left/right"
    # the teacher first, then every configuration per seed, all at the same budget
    budgets = [c.max_time for c in cfgs if c.max_time is not None]
    assert cfgs[0].model == "unetformer" and budgets[0] == 6.0 and set(budgets[1:]) == {3.0}
    assert len(result["runs"]) == 2 * len(bt.CONFIGS) == len(budgets) - 1
    kd = [c for c in cfgs if c.kd]
    assert sorted({c.kd for c in kd}) == ["boundary", "cwd", "logit"]
    assert all(c.teacher.endswith("teacher/last.ckpt") and c.loss == "ce" for c in kd)
    assert all(p.endswith("last.ckpt") and split == "val" for p, split in evaluated)
    r = result["runs"][0]
    for k in ("dataset", "config", "seed", "budget_s", "steps", "epochs", "miou", "boundary_iou", "oa",
              "per_class_iou", "train_s"):
        assert k in r, k
    assert set(result["summary"][ds]) == {*bt.CONFIGS, "random-forest"}
    assert result["summary"][ds]["kd-cwd"]["miou"] == {"mean": 0.4, "std": 0.0, "n": 2}
    rf = result["random_forest"]
    assert len(rf) == 2 and all(0 <= f["miou"] <= 1 for f in rf) and rf[0]["train_pixels"] == 2000
    tp = result["throughput"][ds]
    assert tp["effseg"]["images_per_s"] == pytest.approx(30.0) and tp["plain"]["steps"] == tp["effseg"]["steps"]
    assert tp["ratio"] == pytest.approx(30.0 / tp["plain"]["images_per_s"])
    t = bt.targets(result)[ds]
    assert t["alone_miou"] == pytest.approx(0.4) and t["gain_over_alone"]["kd-logit"] == pytest.approx(0.0)
    assert t["beats_rf_floor"]["alone"] == (0.4 > t["rf_floor_miou"])
    text = bt.report(result, args)
    assert "| kd-boundary | 2 |" in text and "0.400 ± 0.000" in text
    assert (tmp_path / "s.md").read_text().strip() == text


def test_epochs_for_holds_at_least_the_steps():
    assert bt.epochs_for(300, 40) == 60  # 5 steps per epoch at batch 8
    assert bt.epochs_for(300, 12) == 150  # 8 + 4: 2 steps per epoch
    assert bt.epochs_for(7, 9) == 4  # 2 steps per epoch: 4 epochs hold 8 >= 7
    assert bt.epochs_for(1, 100) == 1


def test_step_budget_trains_whole_epochs_and_throughput_modes(tmp_path, monkeypatch):
    root = tmp_path / "data"
    _tiny_dataset(root, n_train=9)  # 2 steps per epoch at batch 8
    cfgs = []

    def fake_train(cfg):
        cfgs.append(cfg)
        return {"epochs": [{"steps": 2, "images_per_s": 30.0, "epoch_s": 0.1}] * (cfg.epochs or 2)}

    monkeypatch.setattr(bt, "fetch_sample", lambda name: {"root": str(root), "split": "left/right", "train": 9,
                                                          "val": 2, "tile": 64, "classes": ["bg", "fg"]})
    monkeypatch.setattr(bt, "effseg_train", fake_train)
    monkeypatch.setattr(bt, "evaluate", lambda *a, **k: {"miou": 0.4, "boundary_iou": 0.2, "oa": 0.9, "f1": 0.5,
                                                        "per_class_iou": [0.3, 0.5]})
    base = dict(quick=True, device="cpu", runs_dir=None, markdown=None, budget=None, seeds=1, datasets=None,
                student=None, teacher=None, teacher_budget=None, rf_pixels=None, rf_trees=None)
    result = bt.run(Namespace(**base, steps=7, teacher_steps=None, throughput="skip"))
    # teacher 14 steps -> 7 epochs; students 7 steps -> 4 epochs; no wall-clock limit anywhere
    assert [c.epochs for c in cfgs] == [7] + [4] * len(bt.CONFIGS)
    assert all(c.max_time is None for c in cfgs)
    assert result["throughput"] == {} and result["runs"][0]["budget_epochs"] == 4
    assert result["runs"][0]["budget_s"] is None
    assert "7 steps per run" in bt.markdown(result) and "7 epochs" in bt.markdown(result)
    assert "optimiser steps" in result["method"]
    assert bt.plan(result["settings"])["training_budget_s"] == pytest.approx((14 + 5 * 7) * bt.SECONDS_PER_STEP)
    cfgs.clear()
    only = bt.run(Namespace(**base, steps=None, teacher_steps=None, throughput="only"))
    assert only["runs"] == [] and only["teachers"] == {} and set(only["throughput"]) == {"landcover"}
    with pytest.raises(ValueError, match="--steps"):
        bt.settings(Namespace(**base, steps=0, teacher_steps=None, throughput="run"))
    # --merge-into: the skip run's training results keep, the only run's images/s join them
    skip_json = tmp_path / "skip.json"
    skip_json.write_text(json.dumps(result))
    merged = bt.run(Namespace(**base, steps=None, teacher_steps=None, throughput="only",
                              merge_into=str(skip_json)))
    assert merged["runs"] == result["runs"] and merged["teachers"] == result["teachers"]
    assert set(merged["throughput"]) == {"landcover"}
    assert merged["throughput"]["landcover"]["effseg"]["images_per_s"] == pytest.approx(30.0)
    assert merged["throughput_run"]["settings"]["throughput"] == "only"
    assert merged["accuracy_run"]["wall_s"] == result["wall_s"]
    assert bt.targets(merged)["landcover"]["throughput_ratio"] is not None
    with pytest.raises(ValueError, match="--merge-into needs --throughput only"):
        bt.settings(Namespace(**base, steps=None, teacher_steps=None, throughput="skip", merge_into="x.json"))
    with pytest.raises(ValueError, match="does not exist"):
        bt.run(Namespace(**base, steps=None, teacher_steps=None, throughput="only",
                         merge_into=str(tmp_path / "none.json")))
    skip_json.write_text(json.dumps({"op": "train", "runs": []}))
    with pytest.raises(ValueError, match="not a bench_train result"):
        bt.run(Namespace(**base, steps=None, teacher_steps=None, throughput="only", merge_into=str(skip_json)))
