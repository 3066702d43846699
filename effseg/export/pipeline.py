"""`effseg export`: a model (zoo name, checkpoint or module:callable) to a deployment
bundle: ONNX (fp32, fp16 or INT8 Q/DQ), the TensorRT check, optionally an engine, and
meta.json with every file's sha256."""
from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..runtime.bundle import PIXEL_DTYPES
from ..runtime.images import IMAGENET_MEAN, IMAGENET_STD


class ExportRefused(RuntimeError):
    """The TensorRT check found something TensorRT would reject (see .findings)."""

    def __init__(self, message: str, findings: list):
        super().__init__(message)
        self.findings = findings


# What a checkpoint without effseg metadata, or a zoo name, gets when not told.
DEFAULT_SIZE, DEFAULT_NUM_CLASSES, DEFAULT_IN_CHANNELS = 512, 6, 3


@dataclass
class BundleOptions:
    # None: from an `effseg train` checkpoint's metadata, else the defaults above.
    size: int | None = None
    num_classes: int | None = None
    in_channels: int | None = None
    arch: str | None = None
    trusted: bool = False
    fp16: bool = False
    int8: bool = False
    calib: str | None = None
    calib_method: str = "entropy"
    engine: bool = False
    workspace: str = "1GiB"
    trt_version: str = "10.3"
    allow_fatal: bool = False
    dynamic_batch: bool = False
    dynamic_hw: bool = False
    opset: int = 17
    argmax: bool = False
    classes: list | None = None
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    tile_overlap: int | None = None
    progress: bool = True
    extra: dict = field(default_factory=dict)
    palette: list | None = None
    pixel_dtype: str = "uint8"
    # SS2D models (CM-UNet) also get the native-scan form: effseg's C++ scan between
    # ONNX Runtime segments on CPUs (fp32 bundles; model.onnx stays the portable form).
    native_scan: bool = True


def apply_checkpoint_meta(model_spec, o: BundleOptions) -> BundleOptions:
    """Fill what the user left unset from an `effseg train` checkpoint's metadata (its
    model, classes, palette, normalisation in the data's own pixel units, tile size), so
    `effseg export RUN/best.ckpt` needs no other argument."""
    import dataclasses

    from ..models.checkpoint import checkpoint_meta

    meta = None
    if isinstance(model_spec, str) and o.arch is None and Path(model_spec).is_file():
        meta = checkpoint_meta(model_spec, o.trusted)
    if meta is None:
        return dataclasses.replace(o, size=o.size or DEFAULT_SIZE, num_classes=o.num_classes or DEFAULT_NUM_CLASSES,
                                   in_channels=o.in_channels or DEFAULT_IN_CHANNELS)
    for name in ("num_classes", "in_channels"):
        given, has = getattr(o, name), int(meta[name])
        if given is not None and given != has:
            raise ValueError(f"--{name.replace('_', '-')} {given}: the checkpoint {model_spec!r} was trained with "
                             f"{has}; leave it out")
    norm = meta.get("normalize") or {}
    default_norm = tuple(o.mean) == tuple(IMAGENET_MEAN) and tuple(o.std) == tuple(IMAGENET_STD)
    return dataclasses.replace(
        o, size=o.size or int(meta.get("tile_size") or DEFAULT_SIZE), num_classes=int(meta["num_classes"]),
        in_channels=int(meta["in_channels"]), classes=o.classes or meta.get("classes"),
        palette=o.palette or meta.get("palette"),
        mean=tuple(norm["mean"]) if default_norm and norm else o.mean,
        std=tuple(norm["std"]) if default_norm and norm else o.std,
        # Float rasters pass the runtime's integer-type check as they are; only integer
        # types are recorded.
        pixel_dtype=meta["pixel_dtype"] if meta.get("pixel_dtype") in PIXEL_DTYPES else o.pixel_dtype)


def check_options(o: BundleOptions) -> None:
    if o.fp16 and o.int8:
        raise ValueError("--fp16 and --int8 exclude each other (an INT8 bundle quantises the fp32 graph)")
    if o.int8 and not o.calib:
        raise ValueError("--int8 needs --calib DIR: a folder of calibration images")
    if o.calib and not o.int8:
        raise ValueError("--calib applies to --int8 only")
    if not isinstance(o.size, int) or o.size < 32:
        raise ValueError(f"--size must be an int >= 32, got {o.size!r}")
    if o.classes is not None and len(o.classes) != o.num_classes:
        raise ValueError(f"--classes names {len(o.classes)} classes but --num-classes is {o.num_classes}")


def options_meta(o: BundleOptions, architecture: str, *, output: str = "logits", precision: str = "fp32") -> dict:
    """meta.json's content (without files) for a model exported with options o: also the
    metadata `effseg predict --backend torch` runs a checkpoint's module under, so both
    routes tile, normalise and label alike."""
    from .bundle import bundle_meta

    return bundle_meta(architecture=architecture, num_classes=o.num_classes,
                       input_shape=(o.in_channels, o.size, o.size), classes=o.classes, output_name=output,
                       output_kind=output, dtype="float16" if o.fp16 else "float32",
                       dynamic_batch=o.dynamic_batch, dynamic_hw=o.dynamic_hw, mean=o.mean, std=o.std,
                       tile_overlap=o.tile_overlap, opset=o.opset, precision=precision, palette=o.palette,
                       pixel_dtype=o.pixel_dtype)


def _log(progress: bool, msg: str) -> None:
    if progress:
        print(f"[effseg export] {msg}", file=sys.stderr, flush=True)


def _native_scan_form(model, tmp, shape, o: BundleOptions, report, precision):
    """(meta section, files) of the native-scan form, or (None, []) where it does not apply."""
    from .. import _native
    from .scan_split import check_native_scan, has_cross_scans, write_native_scan

    if not o.native_scan or precision != "fp32" or not has_cross_scans(model):
        return None, []
    if not _native.available():
        _log(o.progress, f"no native-scan form (the bundle runs its scans as standard ops): {_native.reason}")
        return None, []
    _log(o.progress, "writing the native-scan form (ONNX segments around effseg's C++ scans)")
    section, files = write_native_scan(model, tmp, input_shape=shape, dynamic_batch=o.dynamic_batch,
                                       dynamic_hw=o.dynamic_hw, argmax=o.argmax, output_name=report.output)
    check_native_scan(section, tmp, model, shape, argmax=o.argmax, output_name=report.output)
    return section, [Path(tmp) / f for f in files]


def export_bundle(model_spec, out_dir, options: BundleOptions | None = None) -> dict:
    """Write the bundle for `model_spec` into out_dir; return a summary dict.

    Raises ExportRefused when the TensorRT check has fatal findings for
    options.trt_version (unless options.allow_fatal, which keeps them as warnings).
    """
    from ..models.spec import resolve
    from .tensorrt_check import check_tensorrt, fatal, format_findings
    from .to_onnx import to_onnx

    o = apply_checkpoint_meta(model_spec, options or BundleOptions())
    check_options(o)
    spec = resolve(model_spec, num_classes=o.num_classes, in_channels=o.in_channels, arch=o.arch,
                   trusted=o.trusted) if isinstance(model_spec, str) else None
    model = spec.module if spec is not None else model_spec
    label = spec.label if spec is not None else type(model).__name__
    if spec is not None and spec.source == "zoo":
        _log(o.progress, f"{label}: no checkpoint given, exporting freshly initialised weights")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shape = (1, o.in_channels, o.size, o.size)
    summary = {"model": label, "bundle": str(out)}
    with tempfile.TemporaryDirectory(prefix="effseg-export-") as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        report = to_onnx(model, onnx_path, input_shape=shape, dynamic_batch=o.dynamic_batch,
                         dynamic_hw=o.dynamic_hw, opset=o.opset, dtype="fp16" if o.fp16 else "fp32",
                         argmax=o.argmax, progress=o.progress)
        summary["export"] = report.to_dict()
        precision = "fp16" if o.fp16 else "fp32"
        if o.int8:
            from .quantize import quantize

            q_path = Path(tmp) / "model.int8.onnx"
            _log(o.progress, f"calibrating INT8 ({o.calib_method}) on {o.calib}")
            q = quantize(onnx_path, q_path, o.calib, method=o.calib_method, mean=o.mean, std=o.std,
                         progress=o.progress)
            summary["int8"] = q.to_dict()
            onnx_path, precision = q_path, "int8"
        findings = check_tensorrt(onnx_path, trt_version=o.trt_version)
        summary["tensorrt_check"] = {"trt_version": o.trt_version,
                                     "findings": [f.__dict__ for f in findings]}
        if findings:
            _log(o.progress, format_findings(findings))
        if fatal(findings) and not o.allow_fatal:
            raise ExportRefused(f"TensorRT {o.trt_version} would reject {label}'s graph: "
                                f"{len(fatal(findings))} fatal finding(s); pass --allow-fatal to write the "
                                "bundle anyway (ONNX Runtime still runs it)", findings)
        section, extra = _native_scan_form(model, tmp, shape, o, report, precision)
        if section is not None:
            summary["native_scan"] = {"segments": len(section["segments"]),
                                      "scans": sum("scan" in s for s in section["steps"])}
        engine_path = None
        if o.engine:
            from .engine import build_engine

            engine_path = Path(tmp) / "model.engine"
            build_engine(onnx_path, engine_path, workspace=o.workspace, precision=precision,
                         timing_cache=out / "timing.cache", progress=o.progress)
        from .bundle import write_bundle

        arch = o.arch or (spec.label if spec is not None and spec.source == "zoo" else label)
        meta = options_meta(o, arch, output=report.output, precision=precision)
        if section is not None:
            meta["native_scan"] = section
        write_bundle(out, onnx_path, meta=meta, engine_path=engine_path, extra_files=extra)
    summary["precision"] = precision
    _log(o.progress, f"bundle written to {out} ({precision})")
    return summary
