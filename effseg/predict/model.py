"""MODEL for effseg predict: a bundle (torch-free), or a checkpoint + --arch, exported to
a temporary dynamic-size bundle first so both run through one Predictor: the same
normalisation, nodata rules, output checks and tiling either way."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ..runtime.bundle import META_NAME
from ..runtime.predictor import Predictor


def is_bundle(model) -> bool:
    p = Path(model)
    return (p.is_dir() and (p / META_NAME).is_file()) or (p.name == META_NAME and p.is_file())


def load_predictor(model, *, arch=None, backend="auto", threads=None, nonfinite="nodata", trusted=False,
                   num_classes=6, in_channels=3, tile=None, native_scan=None) -> Predictor:
    kw = dict(backend=backend, threads=threads, nonfinite=nonfinite, max_pixels=None, native_scan=native_scan)
    if is_bundle(model):
        return Predictor(model, **kw)
    if arch is None:
        raise ValueError(f"MODEL {str(model)!r} is not a bundle folder (no {META_NAME}); for a checkpoint pass "
                         "--arch NAME (needs torch), or export it first: effseg export CKPT --arch NAME --out BUNDLE")
    try:
        from ..export.pipeline import BundleOptions, export_bundle
    except ImportError as exc:
        raise RuntimeError(f"MODEL {str(model)!r} with --arch needs torch and the export extra "
                           "(pip install 'effseg[export]'); a bundle runs without them") from exc
    size = tile or 512
    tmp = Path(tempfile.mkdtemp(prefix="effseg-predict-"))
    try:
        export_bundle(str(model), tmp / "bundle",
                      BundleOptions(size=size, arch=arch, trusted=trusted, num_classes=num_classes,
                                    in_channels=in_channels, dynamic_hw=True, dynamic_batch=True, progress=False))
        # The session is built from the verified bytes: the folder is not needed afterwards.
        return Predictor(tmp / "bundle", **kw)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
