"""Predicting a folder: output names that cannot collide, and one bad file reported
instead of ending the run.

Outputs keep the whole input file name: a.png -> a.png_labels.png + a.png_color.png, so
a.png, a.tif and a_png.bmp in one folder give three distinct pairs by construction (file
names are unique in a folder). The labels PNG holds class indices and the nodata label
(255, or 65535 in the 16-bit PNG of bundles with more than 255 classes) where the image
had no data; the colour PNG is RGB, or RGBA with nodata transparent when there is any.
A name already written in this run (a case-insensitive output disk) is an error for that
file, never an overwrite.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .bundle import BundleError
from .images import list_images

ON_ERROR = ("report", "raise")


@dataclass
class RunResult:
    images: int = 0
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def ok(self) -> int:
        return self.images - len(self.failed)


def output_paths(out: Path, image: Path) -> tuple[Path, Path]:
    return out / f"{image.name}_labels.png", out / f"{image.name}_color.png"


def _save(predictor, labels: np.ndarray, paths: tuple[Path, Path]) -> None:
    from PIL import Image

    lab = labels if labels.dtype == np.uint8 else labels.astype(np.uint16)
    Image.fromarray(lab).save(paths[0])
    colour = predictor.colorize(labels)
    nodata = labels == predictor.nodata_label
    if nodata.any():
        colour = np.dstack([colour, np.where(nodata, np.uint8(0), np.uint8(255))])
    del labels, lab
    Image.fromarray(colour).save(paths[1])


def run_folder(predictor, input_path, out_dir, *, progress: bool = True, on_error: str = "report",
               on_failure=None) -> RunResult:
    """on_error 'report': a file that cannot be read or predicted is recorded in
    RunResult.failed (and passed to on_failure(path, reason) at once) and the run goes on;
    'raise': the first such error propagates. A bundle that turns out inconsistent
    (BundleError) always ends the run: every other file would fail the same way."""
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {', '.join(ON_ERROR)}, got {on_error!r}")
    files = list_images(input_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = RunResult(images=len(files))
    taken: set[str] = set()
    tqdm = _tqdm() if progress else None
    for i, f in enumerate(tqdm(files, unit="img", file=sys.stderr) if tqdm else files):
        try:
            paths = output_paths(out, f)
            keys = {p.name.casefold() for p in paths}
            if keys & taken:
                raise FileExistsError(f"its outputs {paths[0].name}, {paths[1].name} were already written in this "
                                      "run for another image (names differing only in case?); not overwriting")
            _save(predictor, predictor.predict_file(f), paths)
            taken |= keys
            result.written += paths
        except BundleError:
            raise
        except Exception as exc:  # noqa: BLE001  one bad file must not end the run (ONNX Runtime raises Exception)
            if on_error == "raise":
                raise
            reason = str(exc) or type(exc).__name__
            if isinstance(exc, (OSError, MemoryError)) or type(exc).__module__.startswith("onnxruntime"):
                reason = f"{type(exc).__name__}: {reason}"
            result.failed.append((f, reason))
            if on_failure is not None:
                on_failure(f, reason)
        if progress and tqdm is None:
            print(f"{i + 1}/{len(files)} {f.name}", file=sys.stderr, flush=True)
    return result


def _tqdm():
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm
