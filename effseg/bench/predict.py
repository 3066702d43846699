"""Real data out (issue 18): a bundle on a real GeoTIFF (the solaris SpaceNet building tile)
and on VRT mosaics of it up to >= 20,000 x 20,000, through effseg's windowed path, one
whole-image pass and a GeoSeg-style non-overlapping tiler: MP/s and peak RSS of each,
each row in a fresh torch-free process (effseg/bench/predict_rows.py); and the seam
error of tiling, measured against one whole-image pass (effseg/bench/predict_seams.py).

The model: a zoo net trained briefly (CE + Dice) on the buildings sample with effseg's
train API (cached), exported with dynamic H/W; --weights random skips the training (speed and
memory do not depend on the weights, class disagreement does)."""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from .._timing import machine
from .predict_data import mosaic_vrt, solaris_scene
from .predict_rows import MODES, ROW_PRELUDE
from .script import MALLOC_VARS, child_python

DEFAULTS = {"vrt_sides": "10000,20000", "tile": 512, "overlap": 64, "batch": 4, "seam_tiles": "256,512",
            "seam_overlap": 64, "train_budget": 90.0, "train_loss": "ce+dice", "rss_bound_mb": 1500.0,
            "mem_limit_mb": 8000.0}
QUICK = {"tile": 64, "overlap": 16, "batch": 2, "seam_tiles": "64", "seam_overlap": 16, "train_budget": 3.0}
QUICK_HELP = ("mosaics of 2x and 3x the image's side, 64-px tiles, a 3 s training run (pass --bundle and "
              "--image to skip training and the download: seconds)")
MODEL = "unetformer-dw"


def add_arguments(p) -> None:
    p.add_argument("--vrt-sides", default=None,
                   help=f"comma-separated sides of the square VRT mosaics (default {DEFAULTS['vrt_sides']}; "
                        "--quick: 2x and 3x the image's side)")
    p.add_argument("--image", default=None, help="a local GeoTIFF instead of the solaris building tile")
    p.add_argument("--bundle", default=None, help="a dynamic-size bundle to run instead of training and exporting one")
    p.add_argument("--model", default=MODEL, help=f"zoo model to train and export (default {MODEL})")
    p.add_argument("--weights", choices=("trained", "random"), default="trained",
                   help="trained: a short effseg train run on the buildings sample, cached (default); random")
    p.add_argument("--train-loss", default=None, help=f"loss of the training run (default {DEFAULTS['train_loss']})")
    p.add_argument("--train-budget", type=float, default=None,
                   help=f"seconds of training (default {DEFAULTS['train_budget']:g})")
    for name in ("tile", "overlap", "batch"):
        p.add_argument(f"--{name}", type=int, default=None,
                       help=f"windowed path and tiler {name} (default {DEFAULTS[name]}; --quick {QUICK[name]})")
    p.add_argument("--seam-tiles", default=None, help=f"tile sides of the seam measurement "
                                                      f"(default {DEFAULTS['seam_tiles']})")
    p.add_argument("--seam-overlap", type=int, default=None,
                   help=f"overlap of the blended seam tiles (default {DEFAULTS['seam_overlap']})")
    p.add_argument("--rss-bound-mb", type=float, default=None,
                   help=f"the peak RSS the windowed path must stay under on every raster "
                        f"(default {DEFAULTS['rss_bound_mb']:g} MB)")
    p.add_argument("--mem-limit-mb", type=float, default=None,
                   help="whole-image and tiler rows run on a mosaic only when their estimated peak RSS is under "
                        f"this (and 80%% of MemAvailable; default {DEFAULTS['mem_limit_mb']:g} MB)")
    p.add_argument("--row-timeout", type=float, default=7200.0, help="seconds one row may run (default 7200)")
    p.add_argument("--plan-only", action="store_true",
                   help="run the seams and the rows on the image and the 2x mosaic, print the estimated time "
                        "of the other mosaics, stop (no JSON)")
    p.add_argument("--work-dir", default=None, help="keep rasters, bundle and outputs here (default: a temp folder)")


def _ints(text: str) -> list[int]:
    return sorted({int(v) for v in str(text).split(",") if v.strip()})


def settings(args) -> dict:
    base = {**DEFAULTS, **(QUICK if args.quick else {})}
    s = {k: (getattr(args, k, None) if getattr(args, k, None) is not None else v) for k, v in base.items()}
    s["seam_tiles"] = _ints(s["seam_tiles"])
    s["vrt_sides"] = None if args.quick and args.vrt_sides is None else _ints(s["vrt_sides"])
    for k in ("model", "weights", "image", "bundle", "row_timeout", "plan_only"):
        s[k] = getattr(args, k, None)
    s["threads"] = getattr(args, "threads", None)
    if s["tile"] % 32 or any(t % 32 for t in s["seam_tiles"]):
        raise ValueError(f"--tile and --seam-tiles must be multiples of 32; got {s['tile']}, {s['seam_tiles']}")
    if not 0 <= s["overlap"] <= s["tile"] // 2 or not all(0 <= s["seam_overlap"] <= t // 2 for t in s["seam_tiles"]):
        raise ValueError("--overlap / --seam-overlap must be between 0 and half the tile")
    return s


# -- the model -------------------------------------------------------------------------

def _cache() -> Path:
    from ..data.samples import cache_dir

    return cache_dir() / "bench-predict"


def trained_checkpoint(model: str, budget: float, loss: str = "ce+dice", seed: int = 0) -> tuple[Path, dict]:
    """last.ckpt of an effseg.train.train run of `budget` s on the buildings sample, kept
    in the cache (one per model, budget, loss and seed) and reused. CE alone learns
    "background everywhere" in such budgets (4 % of the pixels are buildings: see
    bench/results/train-cpu.json), which leaves no class border for a seam to move."""
    from ..data import fetch_sample
    from ..train import TrainConfig, train

    run = _cache() / f"{model}-buildings-{loss}-{budget:g}s-s{seed}"
    info = run / "bench-info.json"
    if info.is_file() and (run / "last.ckpt").is_file():
        return run / "last.ckpt", json.loads(info.read_text())
    root = fetch_sample("buildings")["root"]
    t0 = time.perf_counter()
    summary = train(TrainConfig(model=model, data=root, out=str(run), max_time=budget, batch=8, seed=seed,
                                loss=loss, device="cpu", progress=False))
    epochs = summary["epochs"]
    meta = {"model": model, "dataset": "buildings (effseg.data.fetch_sample, train split)", "budget_s": budget,
            "loss": loss, "seed": seed, "train_s": time.perf_counter() - t0,
            "steps": int(sum(e["steps"] for e in epochs)),
            "last_epoch": {k: v for k, v in (epochs[-1] if epochs else {}).items() if isinstance(v, (int, float))}}
    info.write_text(json.dumps(meta, indent=2) + "\n")
    return run / "last.ckpt", meta


def scene_stats(path) -> tuple[str, float, float]:
    import rasterio

    with rasterio.open(path) as src:
        px = src.read(1)
        return str(px.dtype), float(px.mean()), float(px.std() or 1.0)


def make_bundle(s: dict, scene: Path, work: Path) -> tuple[Path, dict]:
    """The bundle the rows run: exported from the cached training run (and kept beside it,
    one per tile size and overlap), or from the zoo's random initialisation into work."""
    from ..export.pipeline import BundleOptions, export_bundle
    from ..runtime.bundle import META_NAME

    common = dict(size=s["tile"], dynamic_hw=True, dynamic_batch=True, progress=False, tile_overlap=s["overlap"])
    t0 = time.perf_counter()
    if s["weights"] == "trained":
        ckpt, info = trained_checkpoint(s["model"], s["train_budget"], s["train_loss"])
        out = ckpt.parent / f"bundle-t{s['tile']}-o{s['overlap']}"
        if not (out / META_NAME).is_file():
            export_bundle(str(ckpt), out, BundleOptions(**common))
        info = {"weights": "trained", "training": info}
    else:
        out = work / "bundle"
        dtype, mean, std = scene_stats(scene)
        export_bundle(s["model"], out, BundleOptions(**common, num_classes=2, in_channels=1, pixel_dtype=dtype,
                                                     mean=(mean,), std=(std,)))
        info = {"weights": "random (the zoo model's initialisation): speed and memory only; class disagreement "
                           "of an untrained net says little"}
    return out, {"model": s["model"], **info, "bundle": str(out), "bundle_s": time.perf_counter() - t0}


# -- the rows --------------------------------------------------------------------------

def row_env() -> dict:
    """The children run with glibc's default malloc settings (those of a user's process),
    not the raised thresholds this script re-executes itself with."""
    return {k: v for k, v in os.environ.items() if k not in MALLOC_VARS and k != "EFFSEG_BENCH_MALLOC"}


def run_row(cfg: dict, timeout: float) -> dict:
    t0 = time.perf_counter()
    argv, env = child_python(row_env())
    p = subprocess.run([*argv, "-c", ROW_PRELUDE, json.dumps(cfg)], capture_output=True, text=True,
                       timeout=timeout, env=env, check=False)
    lines = p.stdout.strip().splitlines()
    if p.returncode != 0 or not lines:
        raise RuntimeError(f"row {cfg['mode']} on {cfg['input']} failed ({p.returncode}): {p.stderr[-2000:]}")
    return {**json.loads(lines[-1]), "process_s": time.perf_counter() - t0}


def linear_fit(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """(intercept, slope) of peak MB over megapixels, least squares; None below two sizes."""
    if len({x for x, _ in points}) < 2:
        return None
    x, y = np.array(points, dtype=np.float64).T
    slope, intercept = np.polyfit(x, y, 1)
    return float(intercept), float(slope)


def peak_estimates(rows: list[dict], pixel_bytes: int) -> dict:
    """mode -> megapixels -> estimated peak RSS (MB), or None where it cannot be told.
    whole: a straight line through its peaks on the image and the 2x mosaic (the model's
    activations grow with the pixels of its one pass). tiler: its peak on the image plus
    what it holds per extra pixel: the raster and its padded copy (pixel_bytes each) and
    the class map and the copy written (1 byte each); a line through two small runs would
    mistake ONNX Runtime's and GDAL's fixed costs settling for growth."""
    fit = linear_fit([(r["megapixels"], r["peak_rss_mb"]) for r in rows if r["mode"] == "whole"])
    base = next((r for r in rows if r["mode"] == "tiler" and r["raster"] == "image"), None)

    def whole(mp):
        return None if fit is None else fit[0] + fit[1] * mp

    def tiler(mp):
        if base is None:
            return None
        return base["peak_rss_mb"] + (mp - base["megapixels"]) * 1e6 * (2 * pixel_bytes + 2) / 2**20

    return {"whole": whole, "tiler": tiler, "whole_fit": fit}


def mem_available_mb() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def estimate_mosaic_s(rows: list[dict], sides: list[int], peaks: dict, limit: float) -> dict:
    """Seconds the mosaic rows will take, from the MP/s each mode reached on the image."""
    rate = {r["mode"]: r["mp_per_s"] for r in rows if r["raster"] == "image"}
    per, total = {}, 0.0
    for side in sides:
        mp = side * side / 1e6
        per[side] = {}
        for mode in MODES:
            guess = None if mode == "windowed" else peaks[mode](mp)
            runs = mode == "windowed" or (guess is not None and guess < limit)
            per[side][mode] = mp / rate[mode] if runs and rate.get(mode) else None
            total += per[side][mode] or 0.0
    return {"per_side_s": per, "total_s": total}


def run(args) -> dict:
    s = settings(args)
    t_start = time.perf_counter()
    tmp = None
    if args.work_dir:
        work = Path(args.work_dir)
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="effseg-bench-predict-")
        work = Path(tmp.name)
    try:
        return _run(s, args, work, t_start)
    finally:
        if tmp is not None:
            tmp.cleanup()


def _run(s: dict, args, work: Path, t_start: float) -> dict:
    import rasterio

    from ..predict.pipeline import PredictOptions, predict_raster
    from ..runtime.predictor import Predictor
    from .predict_seams import seam_error

    rasters = work / "rasters"
    rasters.mkdir(parents=True, exist_ok=True)
    if s["image"]:
        image = Path(s["image"]).resolve()
        source = {"path": str(image), "what": "given with --image"}
    else:
        image = solaris_scene(rasters)
        source = {"what": "solaris 0.4.0 solaris/data/sample_geotiff.tif (SpaceNet, CC BY-SA 4.0): 900x900, "
                          "0.5 m, 1 band uint16, EPSG:32616", "path": str(image)}
    with rasterio.open(image) as src:
        side = max(src.height, src.width)
        source.update(height=src.height, width=src.width, bands=src.count, dtype=src.dtypes[0], nodata=src.nodata)
    sides = s["vrt_sides"] if s["vrt_sides"] is not None else [2 * side, 3 * side]
    calib = 2 * side  # a second size for the whole-image memory fit
    mosaics = {sd: mosaic_vrt(image, rasters / f"mosaic-{sd}.vrt", sd) for sd in sorted({calib, *sides})}

    if s["bundle"]:
        bundle, model = Path(s["bundle"]), {"weights": "given with --bundle", "bundle": str(s["bundle"])}
    else:
        bundle, model = make_bundle(s, image, work)
    from ..runtime.bundle import load_bundle

    model["num_classes"] = load_bundle(bundle).num_classes
    print(f"model: {model.get('model', bundle)} ({model['weights'].split(' ')[0]}, {model['num_classes']} classes)",
          flush=True)

    # Seam error, in this process (no memory figures here).
    pred = Predictor(bundle, backend="onnxruntime", threads=s["threads"], max_pixels=None)
    whole = Predictor(bundle, backend="onnxruntime", threads=s["threads"], tile=False, max_pixels=None)
    seams = []
    for t in s["seam_tiles"]:
        out = work / "seam" / str(t)
        r = predict_raster(pred, image, out, PredictOptions(tile=t, overlap=s["seam_overlap"], progress=False))
        with rasterio.open(r.output) as src:
            labels = src.read(1)
        seams.append(seam_error(pred, whole, image, t, s["seam_overlap"], pipeline_labels=labels))
        b, g = seams[-1]["blended_vs_whole"], seams[-1]["tiler_vs_whole"]
        print(f"seams, tile {t}: blended max |dlogit| near borders {b['near_border']['max_abs_logit_diff']:.3g}, "
              f"class differs {b['class_differs_fraction']:.2%}; tiler {g['near_border']['max_abs_logit_diff']:.3g}, "
              f"{g['class_differs_fraction']:.2%}", flush=True)
    del pred, whole

    def row(mode: str, raster: str, path) -> dict:
        cfg = {"mode": mode, "bundle": str(bundle), "input": str(path), "out": str(work / "out" / mode / raster),
               "tile": s["tile"], "overlap": s["overlap"], "batch": s["batch"], "threads": s["threads"]}
        r = {"raster": raster, **run_row(cfg, s["row_timeout"])}
        print(f"{mode:8s} {raster:14s} {r['megapixels']:8.1f} MP  {r['mp_per_s']:6.3f} MP/s  "
              f"peak RSS {r['peak_rss_mb']:7.0f} MB  ({r['seconds']:.1f} s)", flush=True)
        return r

    rows = [row(m, "image", image) for m in MODES]
    rows += [row(m, f"mosaic-{calib}", mosaics[calib]["path"]) for m in MODES]
    peaks = peak_estimates(rows, np.dtype(source["dtype"]).itemsize * source["bands"])
    avail = mem_available_mb()
    limit = min(s["mem_limit_mb"], 0.8 * avail) if avail else s["mem_limit_mb"]
    todo = [sd for sd in sides if sd != calib]
    est = estimate_mosaic_s(rows, todo, peaks, limit)
    print(f"plan: mosaics {', '.join(map(str, todo)) or 'none'} will take about {est['total_s'] / 60:.1f} min "
          f"at the image's MP/s", flush=True)
    if s["plan_only"]:
        raise SystemExit(0)  # --plan-only: no JSON, so no partial result stands in for a run
    skipped = []
    for sd in todo:
        mp = sd * sd / 1e6
        for m in MODES:
            guess = None if m == "windowed" else peaks[m](mp)
            if m != "windowed" and (guess is None or guess >= limit):
                skipped.append({"mode": m, "raster": f"mosaic-{sd}", "megapixels": mp,
                                "estimated_peak_rss_mb": guess, "limit_mb": limit,
                                "why": "estimated peak RSS over the limit: not run"})
                print(f"{m:8s} mosaic-{sd:<7d} not run: estimated peak RSS "
                      f"{'unknown' if guess is None else f'{guess:.0f} MB'} (limit {limit:.0f} MB)", flush=True)
                continue
            rows.append({**row(m, f"mosaic-{sd}", mosaics[sd]["path"]), "estimated_peak_rss_mb": guess})
    return {"op": "predict", "device": "cpu", "machine": {**machine("cpu"), "isa": _isa()}, "settings": s,
            "image": source, "mosaics": list(mosaics.values()), "model": model,
            "method": method(s), "seams": seams, "rows": rows, "not_run": skipped,
            "memory_fits": {"whole": None if peaks["whole_fit"] is None else
                            {"intercept_mb": peaks["whole_fit"][0], "mb_per_megapixel": peaks["whole_fit"][1]},
                            "tiler": {"mb_per_megapixel": 1e6 * (2 * np.dtype(source["dtype"]).itemsize
                                                                 * source["bands"] + 2) / 2**20,
                                      "from": "its peak on the image"}},
            "mem_limit_mb": limit, "plan": est, "wall_s": time.perf_counter() - t_start}


def _isa() -> dict | None:
    from .. import _native

    return dict(_native._C.build_info()) if _native.available() else None


def method(s: dict) -> str:
    return (
        "Each row is a fresh Python process with torch blocked (numpy, rasterio, ONNX Runtime via "
        "effseg.runtime.Predictor; glibc malloc defaults), one warm-up call of a 64x64 tile, then the timed work: "
        "read, model, write a deflate GeoTIFF class map. Peak RSS = the process's VmHWM at the end (imports "
        "included; rss_before_mb is the resident set after the imports and warm-up). MP/s = raster pixels / the "
        "timed seconds. windowed: effseg.predict.pipeline.predict_files (reader/model/writer threads, "
        f"{s['tile']}-px tiles, overlap {s['overlap']}, batch {s['batch']}, cosine blending). Every row reads "
        "under GDAL_CACHEMAX 128 MB. "
        "whole: the raster read whole, Predictor(tile=False).predict: reflect-padded to a multiple of 32, one "
        f"model pass. tiler (GeoSeg-style): the raster read whole, zero-padded at the bottom/right to whole "
        f"{s['tile']}-px tiles, non-overlapping tiles predicted in batches of {s['batch']}, argmax stitched, "
        "cropped. whole and tiler run on a mosaic only when their estimated peak RSS stays under the memory limit "
        "(whole: a straight line through its peaks on the image and the 2x mosaic; tiler: its peak on the image "
        "+ the raster, its padded copy and two class-map bytes per extra pixel); else the estimate is reported. "
        "Mosaics: VRT XML, SimpleSources tiling the image. Seams: on the image (one whole-image pass fits), "
        f"per seam tile size: effseg's blended tiles (overlap {s['seam_overlap']}, cosine) and the "
        "non-overlapping tiler vs the whole-image pass; per pixel the max over classes of |logit difference|; "
        "regions: image_edge = within 8 px of the image's own edge (where the methods pad differently), "
        "near_border = within 8 px of an internal tile edge (away from the image edge), elsewhere; "
        "pipeline_agreement = the shipped pipeline's class map vs the blended logits' argmax.")


def targets(result: dict) -> dict:
    """Peak RSS of the windowed path per raster against the stated bound, its growth
    from the smallest to the largest mosaic, MP/s per mode, and the seam figures."""
    win = {r["raster"]: r["peak_rss_mb"] for r in result["rows"] if r["mode"] == "windowed"}
    mosaics = sorted((r["megapixels"], r["peak_rss_mb"]) for r in result["rows"]
                     if r["mode"] == "windowed" and r["raster"].startswith("mosaic-"))
    bound = result["settings"]["rss_bound_mb"]
    mps = {f"{r['mode']}@{r['raster']}": r["mp_per_s"] for r in result["rows"]}
    k, tile = result["model"].get("num_classes") or 0, result["settings"]["tile"]
    # What the windowed path holds that grows with the raster's width (never its height):
    # one tile row of float32 logits and one 512-row block of the uint8 class map.
    width_mb = {r["raster"]: (k * tile * (r["width"] + tile) * 4 + 512 * r["width"]) / 2**20
                for r in result["rows"] if r["mode"] == "windowed"}
    return {
        "windowed_peak_rss_mb": win, "windowed_width_buffers_mb": width_mb, "rss_bound_mb": bound,
        "windowed_under_bound": bool(win) and all(v < bound for v in win.values()),
        "largest_mosaic_megapixels": mosaics[-1][0] if mosaics else None,
        "windowed_rss_largest_over_smallest_mosaic": mosaics[-1][1] / mosaics[0][1] if len(mosaics) > 1 else None,
        "mp_per_s": mps,
        "windowed_over_tiler_mp_per_s": {r: mps[f"windowed@{r}"] / mps[f"tiler@{r}"] for r in win
                                         if f"tiler@{r}" in mps},
        "seams": {str(x["tile"]): {
            "blended_class_differs": x["blended_vs_whole"]["class_differs_fraction"],
            "tiler_class_differs": x["tiler_vs_whole"]["class_differs_fraction"],
            "blended_near_border_max_logit_diff": x["blended_vs_whole"]["near_border"]["max_abs_logit_diff"],
            "tiler_near_border_max_logit_diff": x["tiler_vs_whole"]["near_border"]["max_abs_logit_diff"],
            "pipeline_agreement": x.get("pipeline_agreement"),
            # Below ~1 % the whole pass is near one class: class flips then say little, the logits do.
            "whole_pass_minority_class_fraction": min(x["whole_class_fractions"])} for x in result["seams"]},
        "not_run": [f"{x['mode']}@{x['raster']}" for x in result["not_run"]],
    }
