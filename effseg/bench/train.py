"""Training on the real samples under a fixed CPU budget per run (issue 17): a student
alone, with CE + DistanceLoss and with each KD mode from a trained teacher, over seeds,
against a per-pixel random forest as the floor; and effseg's training loop's images/s
against a plain PyTorch loop of the same model and loss.

Every network run goes through effseg.train.train (max_time = the budget) and is scored
by effseg.train.evaluate on its last checkpoint; the forest is scored with the same
Scores (SegMetrics + Boundary IoU) over the same val tiles."""
from __future__ import annotations

import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .._timing import machine
from ..data import Augment, SegFolder, fetch_sample
from ..data.samples import SAMPLES
from ..models.spec import build_model
from ..train import TrainConfig, evaluate
from ..train import train as effseg_train
from ..train.evaluate import Scores
from ..train.objective import AUX_WEIGHT

# The student's configurations: TrainConfig fields on top of the common ones.
CONFIGS = {
    "alone": {"loss": "ce"},
    "ce+distance": {"loss": "ce+distance"},
    "kd-logit": {"loss": "ce", "kd": "logit"},
    "kd-cwd": {"loss": "ce", "kd": "cwd"},
    "kd-boundary": {"loss": "ce", "kd": "boundary"},
}
DEFAULTS = {"budget": 45.0, "seeds": 3, "datasets": "buildings,landcover", "student": "unetformer-dw",
            "teacher": "unetformer", "rf_pixels": 50_000, "rf_trees": 50, "tp_steps": 10, "dataset_overhead_s": 60.0}
QUICK = {"budget": 3.0, "seeds": 1, "datasets": "landcover", "rf_pixels": 2_000, "rf_trees": 10, "tp_steps": 2,
         "dataset_overhead_s": 10.0}
RF_WINDOWS = (3, 9)  # local means of each band over these square windows
BATCH = 8
# Per network run beyond its budget (the last step, the final validation, checkpoint,
# evaluate: 1-2.5 s per landcover run in the --quick smoke run on an idle 2-core machine,
# buildings has 3x the val tiles), and per dataset the forest and throughput parts
# (settings' dataset_overhead_s): estimates, used only for the planned duration printed first.
OVERHEAD_PER_RUN_S = 4.0
# Seconds per student step on 2 idle cores (unetformer-dw, batch 8, 128x128: 109 steps in the
# 40 s runs of bench/results/train-cpu.json): only for the planned duration with --steps.
SECONDS_PER_STEP = 0.37
QUICK_HELP = "3 s per run, 1 seed, landcover only, the forest on 2,000 pixels (about a minute)"


def add_arguments(p) -> None:
    p.add_argument("--budget", type=float, default=None,
                   help=f"seconds per training run (default {DEFAULTS['budget']:g})")
    p.add_argument("--seeds", type=int, default=None, help=f"seeds per configuration (default {DEFAULTS['seeds']})")
    p.add_argument("--datasets", default=None, help=f"comma-separated samples (default {DEFAULTS['datasets']})")
    p.add_argument("--student", default=None, help=f"zoo model trained in every configuration "
                                                   f"(default {DEFAULTS['student']})")
    p.add_argument("--teacher", default=None, help=f"zoo model of the KD teacher (default {DEFAULTS['teacher']})")
    p.add_argument("--teacher-budget", type=float, default=None, help="seconds for the teacher (default 2x --budget)")
    p.add_argument("--steps", type=int, default=None,
                   help="optimiser steps per student run instead of --budget seconds (whole epochs, rounded up "
                        "per dataset): a budget the machine's load cannot change, so the accuracy runs need "
                        "no quiet machine")
    p.add_argument("--teacher-steps", type=int, default=None, help="with --steps: the teacher's (default 2x --steps)")
    p.add_argument("--throughput", default="run", choices=["run", "skip", "only"],
                   help="the effseg-vs-plain-loop images/s part: run it (default), skip it (accuracy only, e.g. "
                        "on a busy machine), or run only it (on a quiet machine)")
    p.add_argument("--merge-into", default=None, metavar="JSON",
                   help="with --throughput only: an earlier run's JSON (e.g. a --throughput skip run on a busy "
                        "machine) whose training runs the result keeps, adding this run's images/s")
    p.add_argument("--rf-pixels", type=int, default=None, help="training pixels the forest is fit on "
                                                              f"(default {DEFAULTS['rf_pixels']:,})")
    p.add_argument("--rf-trees", type=int, default=None, help=f"trees in the forest (default {DEFAULTS['rf_trees']})")
    p.add_argument("--runs-dir", default=None, help="keep the run folders here (default: a temporary folder)")
    p.add_argument("--markdown", default=None, metavar="OUT", help="also write the Markdown summary here")


def settings(args) -> dict:
    """The flags with their defaults (--quick's where it changes them, unless given)."""
    base = {**DEFAULTS, **(QUICK if args.quick else {})}
    s = {k: (getattr(args, k, None) if getattr(args, k, None) is not None else v) for k, v in base.items()}
    s["datasets"] = [d.strip() for d in str(s["datasets"]).split(",") if d.strip()]
    unknown = [d for d in s["datasets"] if d not in SAMPLES]
    if unknown or not s["datasets"]:
        raise ValueError(f"--datasets: {unknown or 'none'}; expected some of {', '.join(SAMPLES)}")
    s["budget"] = float(s["budget"])
    s["teacher_budget"] = float(getattr(args, "teacher_budget", None) or 2 * s["budget"])
    s["steps"] = getattr(args, "steps", None)
    s["teacher_steps"] = getattr(args, "teacher_steps", None) or (2 * s["steps"] if s["steps"] else None)
    if s["steps"] is not None and not (s["steps"] >= 1 and s["teacher_steps"] >= 1):
        raise ValueError(f"--steps and --teacher-steps must be >= 1, got {s['steps']} and {s['teacher_steps']}")
    s["throughput"] = getattr(args, "throughput", None) or "run"
    if getattr(args, "merge_into", None) and s["throughput"] != "only":
        raise ValueError(f"--merge-into needs --throughput only, got --throughput {s['throughput']}")
    if not (s["budget"] > 0 and s["seeds"] >= 1 and s["rf_pixels"] >= 100 and s["rf_trees"] >= 1):
        raise ValueError(f"--budget > 0, --seeds >= 1, --rf-pixels >= 100, --rf-trees >= 1; got {s}")
    return s


def plan(s: dict) -> dict:
    runs = len(s["datasets"]) * len(CONFIGS) * s["seeds"]
    if s.get("steps"):
        budget = (len(s["datasets"]) * s["teacher_steps"] + runs * s["steps"]) * SECONDS_PER_STEP
    else:
        budget = len(s["datasets"]) * s["teacher_budget"] + runs * s["budget"]
    if s.get("throughput") == "only":
        runs, budget = 0, 0.0
    total = (budget + (runs + len(s["datasets"])) * OVERHEAD_PER_RUN_S
             + len(s["datasets"]) * s["dataset_overhead_s"])
    return {"student_runs": runs, "teacher_runs": len(s["datasets"]), "training_budget_s": budget,
            "predicted_total_s": total}


# -- the random-forest floor ---------------------------------------------------------

def pixel_features(image, windows=RF_WINDOWS) -> np.ndarray:
    """(C, H, W) normalised image -> (H*W, C * (1 + len(windows))) float32: each band's
    value, then its mean over each square window (edge pixels average what is inside)."""
    x = torch.as_tensor(np.asarray(image, dtype=np.float32))[None]
    feats = [x] + [F.avg_pool2d(x, k, stride=1, padding=k // 2, count_include_pad=False) for k in windows]
    f = torch.cat(feats, 1)[0]
    return f.reshape(f.shape[0], -1).T.contiguous().numpy()


def random_forest(train_ds, val_ds, pixels: int, trees: int, seed: int, jobs: int) -> dict:
    from sklearn.ensemble import RandomForestClassifier

    t0 = time.perf_counter()
    xs, ys = [], []
    for i in range(len(train_ds)):
        x, y = train_ds[i]
        y = y.numpy().reshape(-1)
        keep = y != 255
        xs.append(pixel_features(x.numpy())[keep])
        ys.append(y[keep])
    X, Y = np.concatenate(xs), np.concatenate(ys)
    pick = np.random.default_rng(seed).choice(len(Y), size=min(pixels, len(Y)), replace=False)
    rf = RandomForestClassifier(n_estimators=trees, n_jobs=jobs, random_state=seed)
    rf.fit(X[pick], Y[pick])
    fit_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    scores = Scores(val_ds.num_classes)
    for i in range(len(val_ds)):
        x, y = val_ds[i]
        pred = rf.predict(pixel_features(x.numpy())).reshape(y.shape)
        scores.update(torch.from_numpy(pred.astype(np.int64)), y)
    return {**_scores(scores.result()), "fit_s": fit_s, "predict_s": time.perf_counter() - t1,
            "train_pixels": int(len(pick)), "train_pixels_available": int(len(Y)), "trees": trees, "n_jobs": jobs}


# -- the network runs ----------------------------------------------------------------

def _scores(r: dict) -> dict:
    return {k: r.get(k) for k in ("miou", "boundary_iou", "oa", "f1", "per_class_iou")}


def epochs_for(steps: int, train_tiles: int) -> int:
    """Whole epochs that hold at least `steps` optimiser steps at batch BATCH (the last
    batch of an epoch is the partial one)."""
    return max(1, math.ceil(steps / math.ceil(train_tiles / BATCH)))


def train_run(root, model: str, out: Path, budget: float, seed: int, device: str, steps: int | None = None,
              **extra) -> dict:
    """One effseg.train.train run of `budget` seconds (or of the whole epochs that hold
    `steps` steps, when given), scored by evaluate on its last checkpoint."""
    limit = {"max_time": budget}
    if steps is not None:
        limit = {"epochs": epochs_for(steps, len(SegFolder(root, "train")))}
        budget = None
    cfg = TrainConfig(model=model, data=str(root), out=str(out), batch=BATCH, seed=seed,
                      device=device, progress=False, **limit, **extra)
    t0 = time.perf_counter()
    summary = effseg_train(cfg)
    train_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    scores = evaluate(out / "last.ckpt", root, "val", device=device)
    epochs = summary["epochs"]
    return {"model": model, "seed": seed, "budget_s": budget, "budget_epochs": limit.get("epochs"),
            "loss": cfg.loss, "kd": cfg.kd,
            "epochs": len(epochs), "steps": int(sum(e["steps"] for e in epochs)),
            "train_final_epoch_miou": epochs[-1].get("miou") if epochs else None,
            "train_s": train_s, "evaluate_s": time.perf_counter() - t1, **_scores(scores)}


# -- throughput: effseg's loop vs a plain one ----------------------------------------

def plain_loop(model_name: str, train_ds: SegFolder, bands: int, epochs: int, warmup: int, seed: int,
               device: str) -> dict:
    """The loop a PyTorch user writes: same model, CE (+ 0.4 CE per auxiliary head, as
    effseg's objective), AdamW with effseg's defaults, batch, data and augmentation."""
    d = TrainConfig(model=model_name, data="", out="")
    torch.manual_seed(seed)
    model = build_model(model_name, train_ds.num_classes, bands, seed=seed).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=d.lr, weight_decay=d.weight_decay)
    loader = torch.utils.data.DataLoader(train_ds, batch_size=BATCH, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed))
    images, seconds, steps = 0, 0.0, 0
    for epoch in range(warmup + epochs):
        train_ds.transform.set_epoch(epoch)
        t0, n = time.perf_counter(), 0
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            out = model(x)
            heads = list(out) if isinstance(out, (tuple, list)) else [out]
            loss = F.cross_entropy(heads[0], y, ignore_index=255)
            for a in heads[1:]:
                if a.shape[-2:] != y.shape[-2:]:
                    a = F.interpolate(a, size=y.shape[-2:], mode="bilinear", align_corners=False)
                loss = loss + AUX_WEIGHT * F.cross_entropy(a, y, ignore_index=255)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += x.shape[0]
            steps += epoch >= warmup
        if epoch >= warmup:
            images, seconds = images + n, seconds + time.perf_counter() - t0
    return {"images": images, "seconds": seconds, "steps": steps, "images_per_s": images / seconds}


def throughput(root, model: str, bands: int, steps: int, out: Path, device: str, effseg_first: bool,
               abba: bool = True) -> dict:
    """images/s over the same epochs (1 warm-up epoch, then enough for >= `steps` steps) of
    effseg.train.train and of plain_loop, in this process, in ABBA order (A, B, B, A: a
    linear drift of the machine's speed hits both alike; each side's images and seconds
    summed over its two rounds), or A, B when not abba (--quick)."""
    ds = SegFolder(root, "train", transform=Augment(seed=0))
    per_epoch = math.ceil(len(ds) / BATCH)
    epochs = max(1, math.ceil(steps / per_epoch))

    def ours():
        cfg = TrainConfig(model=model, data=str(root), out=str(out), epochs=1 + epochs, batch=BATCH, seed=0,
                          device=device, progress=False)
        timed = effseg_train(cfg)["epochs"][1:]
        images = sum(e["images_per_s"] * e["epoch_s"] for e in timed)
        seconds = sum(e["epoch_s"] for e in timed)
        return {"images": round(images), "seconds": seconds, "steps": int(sum(e["steps"] for e in timed)),
                "images_per_s": images / seconds}

    def plain():
        return plain_loop(model, ds, bands, epochs, 1, 0, device)

    a, b = (("effseg", ours), ("plain", plain)) if effseg_first else (("plain", plain), ("effseg", ours))
    rounds = [(name, fn()) for name, fn in ((a, b, b, a) if abba else (a, b))]
    got = {}
    for name in ("effseg", "plain"):
        mine = [r for n, r in rounds if n == name]
        images, seconds = sum(r["images"] for r in mine), sum(r["seconds"] for r in mine)
        got[name] = {"images": images, "seconds": seconds, "steps": sum(r["steps"] for r in mine),
                     "images_per_s": images / seconds}
    return {**got, "rounds": [{"loop": n, "images_per_s": r["images_per_s"]} for n, r in rounds],
            "warmup_epochs": 1, "epochs": epochs, "steps_per_epoch": per_epoch,
            "ratio": got["effseg"]["images_per_s"] / got["plain"]["images_per_s"]}


# -- aggregation and report ----------------------------------------------------------

def _mean_std(values) -> dict:
    v = [float(x) for x in values if x is not None]
    return {"mean": statistics.fmean(v) if v else None, "std": statistics.stdev(v) if len(v) > 1 else None,
            "n": len(v)}


def summarize(runs: list[dict]) -> dict:
    """{dataset: {config: {metric: {mean, std, n}, per_class_iou: [mean per class], steps}}}
    over the runs' seeds (std: sample standard deviation, None with one seed)."""
    groups: dict = {}
    for r in runs:
        groups.setdefault(r["dataset"], {}).setdefault(r["config"], []).append(r)
    out = {}
    for ds, configs in groups.items():
        out[ds] = {}
        for name, rs in configs.items():
            row = {k: _mean_std([r.get(k) for r in rs]) for k in ("miou", "boundary_iou", "oa", "steps")}
            per_class = [r["per_class_iou"] for r in rs if r.get("per_class_iou")]
            row["per_class_iou"] = [_mean_std(c)["mean"] for c in zip(*per_class)] if per_class else None
            row["seeds"] = sorted(r["seed"] for r in rs)
            out[ds][name] = row
    return out


def _num(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _fmt(s: dict | None, digits: int = 3) -> str:
    if not s or s.get("mean") is None:
        return "n/a"
    return f"{s['mean']:.{digits}f}" + (f" ± {s['std']:.{digits}f}" if s.get("std") is not None else "")


def markdown(result: dict) -> str:
    st = result["settings"]
    per_run = f"{st['steps']} steps" if st.get("steps") else f"{st['budget']:g} s"
    lines = [f"## Training under a fixed CPU budget ({per_run} per run, "
             f"{st['seeds']} seed(s), student {st['student']})", ""]
    for ds, configs in result["summary"].items():
        t = result["teachers"].get(ds)
        lines += [f"### {ds} ({result['data'][ds]['split']})", "",
                  "| config | seeds | steps | mIoU | Boundary IoU | OA |", "|---|---|---|---|---|---|"]
        if t:
            size = f"{t['budget_s']:g} s" if t.get("budget_s") else f"{t['budget_epochs']} epochs"
            lines.append(f"| teacher {t['model']} ({size}) | 1 | {t['steps']} | {_num(t['miou'])} | "
                         f"{_num(t['boundary_iou'])} | {_num(t['oa'])} |")
        for name, row in configs.items():
            lines.append(f"| {name} | {len(row['seeds'])} | {_fmt(row['steps'], 0)} | {_fmt(row['miou'])} | "
                         f"{_fmt(row['boundary_iou'])} | {_fmt(row['oa'])} |")
        tp = result["throughput"].get(ds)
        if tp:
            order = "ABBA" if len(tp["rounds"]) > 2 else "AB"
            lines += ["", f"Throughput ({tp['effseg']['steps']} steps each, {order}, "
                          f"after 1 warm-up epoch per round): effseg train "
                          f"{tp['effseg']['images_per_s']:.2f} img/s, plain PyTorch loop "
                          f"{tp['plain']['images_per_s']:.2f} img/s (ratio {tp['ratio']:.2f})."]
        lines.append("")
    lines.append(f"Wall time {result['wall_s'] / 60:.1f} min (planned {result['plan']['predicted_total_s'] / 60:.1f}).")
    return "\n".join(lines)


def report(result: dict, args) -> str:
    text = markdown(result)
    if getattr(args, "markdown", None):
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(text + "\n")
    return text


def _isa() -> dict | None:
    from .. import _native

    return dict(_native._C.build_info()) if _native.available() else None


WHY_TEACHER = ("GeoSeg's UNetFormer, ResNet-18 encoder, 11.7 M parameters, vs the student's MobileNetV2 "
               "depthwise variant, 2.1 M: the larger zoo net of the same family, whose training step on 2 CPU "
               "cores measured about the student's, so the stronger model that still trains here")


def _budget_text(s: dict) -> tuple[str, str]:
    """(the teacher's budget, the students' limit) in the method's words."""
    if s.get("steps"):
        return (f"{s['teacher_steps']} optimiser steps (whole epochs, rounded up)",
                f"epochs = the whole epochs that hold {s['steps']} optimiser steps on the dataset's train split "
                f"(a budget in steps, which the machine's load cannot change; the runs' wall seconds are "
                f"recorded as train_s), cosine over those steps")
    return (f"{s['teacher_budget']:g} s",
            f"max_time={s['budget']:g} s (a wall-clock budget, measured from the run's start, covering "
            f"everything train() does in it: steps, per-epoch validation, checkpoints; the run stops after the "
            f"step that crosses it), cosine over the budget")


def method(s: dict) -> str:
    why = WHY_TEACHER if (s["teacher"], s["student"]) == ("unetformer", "unetformer-dw") else "chosen by --teacher"
    teacher_budget, limit = _budget_text(s)
    return (
        f"Per dataset (effseg.data.fetch_sample, its spatial split, 128x128 tiles): a teacher "
        f"{s['teacher']} ({why}) trained once, seed 0, for {teacher_budget}; then per seed "
        f"0..{s['seeds'] - 1} the "
        f"student {s['student']} in each configuration ({', '.join(CONFIGS)}; KD = CE + 1.0 x the KD term "
        f"from the teacher's last checkpoint, tau 1, band 3), each through effseg.train.train with "
        f"{limit}, batch {BATCH}, AdamW lr 6e-4, whole tiles with "
        f"flips/rot90. Scores: effseg.train.evaluate on the run's last checkpoint (not best.ckpt: that "
        f"is chosen on val, the only held-out split), val split, mIoU, per-class IoU, Boundary IoU, OA; "
        f"mean +- sample std over seeds. Floor: sklearn RandomForestClassifier ({s['rf_trees']} trees, "
        f"random_state = seed) on per-pixel features (each normalised band and its {RF_WINDOWS} local "
        f"means), fit on {s['rf_pixels']:,} training pixels drawn uniformly (seeded) from the train tiles, "
        f"predicting every val pixel, scored with the same Scores (SegMetrics ignore 255 + Boundary IoU). "
        f"Throughput: effseg.train.train with epochs set vs a plain PyTorch loop (same model, CE + 0.4 CE "
        f"per aux head, AdamW, batch, data, augmentation), images/s over the same epochs after one warm-up "
        f"epoch, data loading included in both, two rounds each in ABBA order in one process.")


def run(args) -> dict:
    s = settings(args)
    p = plan(s)
    teacher_size, size = ((f"{s['teacher_steps']} steps", f"{s['steps']} steps") if s.get("steps")
                          else (f"{s['teacher_budget']:g} s", f"{s['budget']:g} s"))
    print(f"plan: {len(s['datasets'])} dataset(s) x (1 teacher x {teacher_size} + {s['seeds']} seed(s) x "
          f"{len(CONFIGS)} configs x {size}) = {p['teacher_runs'] + p['student_runs']} runs, "
          f"{p['training_budget_s'] / 60:.1f} min of training budget; with evaluation, forest and throughput "
          f"about {p['predicted_total_s'] / 60:.1f} min", flush=True)
    t_start = time.perf_counter()
    tmp = None
    if args.runs_dir:
        work = Path(args.runs_dir)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="effseg-bench-train-")
        work = Path(tmp.name)
    jobs = torch.get_num_threads()
    runs, teachers, forests, tps, data = [], {}, [], {}, {}
    try:
        for d_i, ds in enumerate(s["datasets"]):
            meta = fetch_sample(ds)
            root = meta["root"]
            data[ds] = {k: meta.get(k) for k in ("split", "train", "val", "skipped", "tile", "classes", "source")}
            if s["throughput"] == "only":
                train_ds = SegFolder(root, "train")
                tps[ds] = throughput(root, s["student"], len(train_ds.stats["mean"]), s["tp_steps"],
                                     work / ds / "throughput", args.device, effseg_first=d_i % 2 == 0,
                                     abba=not args.quick)
                print(f"[{ds}] throughput: effseg/plain = {tps[ds]['ratio']:.2f}", flush=True)
                continue
            t = train_run(root, s["teacher"], work / ds / "teacher", s["teacher_budget"], 0, args.device,
                          steps=s["teacher_steps"])
            teachers[ds] = {**t, "dataset": ds}
            print(f"[{ds}] teacher {s['teacher']}: {t['steps']} steps, mIoU {_num(t['miou'])}", flush=True)
            ckpt = str(work / ds / "teacher" / "last.ckpt")
            for seed in range(s["seeds"]):
                for name, extra in CONFIGS.items():
                    kw = dict(extra, teacher=ckpt) if "kd" in extra else dict(extra)
                    r = train_run(root, s["student"], work / ds / f"{name}-s{seed}", s["budget"], seed,
                                  args.device, steps=s["steps"], **kw)
                    runs.append({"dataset": ds, "config": name, **r})
                    print(f"[{ds}] seed {seed} {name}: {r['steps']} steps, mIoU {_num(r['miou'])}, "
                          f"BIoU {_num(r['boundary_iou'])}", flush=True)
            train_ds = SegFolder(root, "train")
            val_ds = SegFolder(root, "val", stats=train_ds.stats)
            for seed in range(s["seeds"]):
                f = random_forest(train_ds, val_ds, s["rf_pixels"], s["rf_trees"], seed, jobs)
                forests.append({"dataset": ds, "config": "random-forest", "seed": seed, **f})
                print(f"[{ds}] seed {seed} random forest: mIoU {_num(f['miou'])} (fit {f['fit_s']:.1f} s, "
                      f"predict {f['predict_s']:.1f} s)", flush=True)
            if s["throughput"] == "skip":
                continue
            bands = len(train_ds.stats["mean"])
            tps[ds] = throughput(root, s["student"], bands, s["tp_steps"], work / ds / "throughput", args.device,
                                 effseg_first=d_i % 2 == 0, abba=not args.quick)
            print(f"[{ds}] throughput: effseg/plain = {tps[ds]['ratio']:.2f}", flush=True)
    finally:
        if tmp is not None:
            tmp.cleanup()
    result = {"op": "train", "device": args.device, "machine": {**machine(args.device), "isa": _isa()},
              "settings": s, "plan": p, "method": method(s), "data": data, "teachers": teachers,
              "runs": runs, "random_forest": forests, "summary": summarize(runs + forests), "throughput": tps,
              "wall_s": time.perf_counter() - t_start}
    if getattr(args, "merge_into", None):
        return merge_throughput(Path(args.merge_into), result)
    return result


def merge_throughput(path: Path, tp_result: dict) -> dict:
    """An earlier run's result with tp_result's throughput in place of its own; how each
    part ran (settings, machine, allocator, wait policy) stays recorded apart."""
    import json

    if not path.is_file():
        raise ValueError(f"--merge-into: {path} does not exist (expected an earlier bench_train JSON)")
    base = json.loads(path.read_text())
    if base.get("op") != "train" or not base.get("runs"):
        raise ValueError(f"--merge-into: {path} is not a bench_train result with training runs")
    missing = [ds for ds in tp_result["throughput"] if ds not in base.get("summary", {})]
    if missing:
        raise ValueError(f"--merge-into: {path} has no training runs on {', '.join(missing)}")
    base["accuracy_run"] = {k: base.get(k) for k in ("machine", "allocator", "omp_wait", "threads", "wall_s")}
    base["throughput_run"] = {k: tp_result[k] for k in ("machine", "settings", "wall_s")}
    base["throughput"] = tp_result["throughput"]
    return base


def targets(result: dict) -> dict:
    """Per dataset: the forest's floor, the student alone, each configuration's change of
    mean mIoU over the student alone, whether its mean beats the floor, the throughput ratio."""
    out = {}
    for ds, configs in result["summary"].items():
        rf = configs.get("random-forest", {}).get("miou", {}).get("mean")
        alone = configs.get("alone", {}).get("miou", {}).get("mean")
        nets = {k: v["miou"]["mean"] for k, v in configs.items() if k != "random-forest"}
        out[ds] = {"rf_floor_miou": rf, "alone_miou": alone,
                   "gain_over_alone": {k: (None if v is None or alone is None else v - alone)
                                       for k, v in nets.items() if k != "alone"},
                   "beats_rf_floor": {k: (None if v is None or rf is None else v > rf) for k, v in nets.items()},
                   "throughput_ratio": result["throughput"].get(ds, {}).get("ratio")}
    return out
