"""`effseg run`'s outputs (format png): a class map as <file name>_labels.png and its
colours as <file name>_color.png.

Outputs keep the whole input file name: a.png -> a.png_labels.png + a.png_color.png, so
a.png, a.tif and a_png.bmp in one folder give three distinct pairs by construction (file
names are unique in a folder). The labels PNG holds class indices and the nodata label
(255, or 65535 in the 16-bit PNG of bundles with more than 255 classes) where the image
had no data; the colour PNG is RGB, or RGBA with nodata transparent when there is any.
Pillow only: this runs where neither torch nor rasterio is installed.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def output_paths(out: Path, image: Path) -> tuple[Path, Path]:
    return out / f"{image.name}_labels.png", out / f"{image.name}_color.png"


def write_label_pngs(predictor, labels: np.ndarray, paths: tuple[Path, Path]) -> None:
    try:
        from PIL import Image
    except ImportError as exc:
        raise RuntimeError("--format png writes PNGs with Pillow, which is not installed: pip install pillow "
                           "(or pip install 'effseg[runtime]')") from exc
    lab = labels if labels.dtype == np.uint8 else labels.astype(np.uint16)
    Image.fromarray(lab).save(paths[0])
    colour = predictor.colorize(labels)
    nodata = labels == predictor.nodata_label
    if nodata.any():
        colour = np.dstack([colour, np.where(nodata, np.uint8(0), np.uint8(255))])
    del lab
    Image.fromarray(colour).save(paths[1])
