"""MODEL for effseg predict: a bundle (torch-free), or a checkpoint: one written by
`effseg train` (it names its architecture, classes, bands, normalisation, class names and
palette), or a plain one with --arch.

backend "auto" / "onnxruntime" run a checkpoint as a temporary dynamic-size ONNX bundle
(exported first; "tensorrt" needs a bundle with an engine); "torch" runs its nn.Module through
effseg.compile (effseg.predict.torch_predictor). Both are predictors over the same
runtime code: the same normalisation, nodata rules, output checks and tiling either way.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ..runtime.bundle import META_NAME
from ..runtime.predictor import BACKENDS as BUNDLE_BACKENDS
from ..runtime.predictor import Predictor

TORCH_BACKEND = "torch"
BACKENDS = (*BUNDLE_BACKENDS, TORCH_BACKEND)


def is_bundle(model) -> bool:
    p = Path(model)
    return (p.is_dir() and (p / META_NAME).is_file()) or (p.name == META_NAME and p.is_file())


def _checkpoint_options(model, *, arch, trusted, num_classes, in_channels, tile):
    """The export options of checkpoint MODEL, its `effseg train` metadata applied
    (effseg.export.pipeline.apply_checkpoint_meta, as `effseg export` does), or the error
    saying what is missing."""
    try:
        from ..export.pipeline import BundleOptions, apply_checkpoint_meta, check_options
        from ..models.checkpoint import checkpoint_meta
    except ImportError as exc:
        raise RuntimeError(f"MODEL {str(model)!r} is a checkpoint: it needs torch and the export extra "
                           "(pip install 'effseg[export]'); a bundle runs without them") from exc
    if arch is None and checkpoint_meta(str(model), trusted) is None:
        raise ValueError(f"MODEL {str(model)!r} is a checkpoint without `effseg train` metadata (no 'effseg' "
                         "entry naming its architecture): pass --arch NAME (and --num-classes, --in-channels "
                         "when not 6 and 3)")
    o = apply_checkpoint_meta(str(model), BundleOptions(
        size=tile, arch=arch, trusted=trusted, num_classes=num_classes, in_channels=in_channels, dynamic_hw=True,
        dynamic_batch=True, progress=False))
    check_options(o)
    return o


def load_predictor(model, *, arch=None, backend="auto", threads=None, nonfinite="nodata", trusted=False,
                   num_classes=None, in_channels=None, tile=None, compile_backend=None, device=None,
                   native_scan=None):
    """The predictor of MODEL (see the module docstring). num_classes / in_channels: of a
    plain checkpoint (default 6 and 3; an `effseg train` one knows its own). tile: the
    side a checkpoint's model is set up for (default: its training tile size, else 512).
    compile_backend (eager, inductor, onnxruntime; default eager) and device (default:
    CUDA when available) apply to backend "torch" only; native_scan (see Predictor) to
    bundles run by ONNX Runtime."""
    if backend not in BACKENDS:
        raise ValueError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend != TORCH_BACKEND and compile_backend is not None:
        raise ValueError(f"--compile-backend {compile_backend}: applies to --backend torch only "
                         f"(--backend is {backend})")
    kw = dict(threads=threads, nonfinite=nonfinite, max_pixels=None)
    path = Path(model)
    if is_bundle(model):
        if backend == TORCH_BACKEND:
            raise ValueError(f"--backend torch runs a checkpoint's nn.Module, but MODEL {str(model)!r} is a bundle "
                             "(ONNX): use --backend auto, onnxruntime or tensorrt, or give the checkpoint")
        return Predictor(model, backend=backend, native_scan=native_scan, **kw)
    if path.is_dir():
        raise ValueError(f"MODEL {str(model)!r} is not a bundle folder (no {META_NAME}); a checkpoint file from "
                         "`effseg train` runs as it is, a plain one with --arch NAME (needs torch); or export it "
                         "first: effseg export CKPT --arch NAME --out BUNDLE")
    if not path.is_file():
        # A zoo name alone would be random weights: its class maps mean nothing.
        raise ValueError(f"MODEL {str(model)!r} is neither a bundle folder nor a checkpoint file; a zoo name needs "
                         "trained weights: give its checkpoint (--arch NAME for one not from `effseg train`)")
    if backend == "tensorrt":
        # A TensorRT engine is built for fixed shapes, once, on the device: not per run.
        raise ValueError(f"--backend tensorrt runs a bundle's model.engine; MODEL {str(model)!r} is a checkpoint: "
                         "export it with an engine first (effseg export CKPT --engine --out BUNDLE), or use "
                         "--backend torch or onnxruntime")
    o = _checkpoint_options(model, arch=arch, trusted=trusted, num_classes=num_classes, in_channels=in_channels,
                            tile=tile)
    if backend == TORCH_BACKEND:
        return _torch_predictor(str(model), o, compile_backend=compile_backend, device=device, **kw)
    from ..export.pipeline import export_bundle

    tmp = Path(tempfile.mkdtemp(prefix="effseg-predict-"))
    try:
        export_bundle(str(model), tmp / "bundle", o)
        # The session is built from the verified bytes: the folder is not needed afterwards.
        return Predictor(tmp / "bundle", backend=backend, native_scan=native_scan, **kw)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _torch_predictor(model: str, o, *, compile_backend, device, **kw):
    from ..export.pipeline import options_meta
    from ..models.spec import resolve
    from .torch_predictor import DEFAULT_COMPILE_BACKEND, TorchPredictor

    spec = resolve(model, num_classes=o.num_classes, in_channels=o.in_channels, arch=o.arch, trusted=o.trusted)
    meta = options_meta(o, o.arch or spec.label)
    return TorchPredictor(spec.module, meta, model, compile_backend=compile_backend or DEFAULT_COMPILE_BACKEND,
                          device=device, **kw)
