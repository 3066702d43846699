"""Dataset layouts and label codings: the generic folder layout and GeoSeg's LoveDA,
Potsdam, Vaihingen and UAVid. A format finds (image, mask) pairs for a split and turns a
raw mask into class ids with 255 for ignored pixels."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .rasters import IMAGE_SUFFIXES

IGNORE = 255

ISPRS_CLASSES = ("impervious surfaces", "building", "low vegetation", "tree", "car", "clutter")
ISPRS_PALETTE = ((255, 255, 255), (0, 0, 255), (0, 255, 255), (0, 255, 0), (255, 255, 0), (255, 0, 0))
UAVID_CLASSES = ("building", "road", "tree", "low vegetation", "moving car", "static car", "human", "clutter")
UAVID_PALETTE = ((128, 0, 0), (128, 64, 128), (0, 128, 0), (128, 128, 0), (64, 0, 128), (192, 0, 192),
                 (64, 64, 0), (0, 0, 0))
LOVEDA_CLASSES = ("background", "building", "road", "water", "barren", "forest", "agricultural")
LOVEDA_PALETTE = ((255, 255, 255), (255, 0, 0), (255, 255, 0), (0, 0, 255), (159, 129, 183), (0, 255, 0),
                  (255, 195, 128))


def default_palette(n: int) -> list[tuple[int, int, int]]:
    """n distinct display colours (golden-angle hues) for layouts that bring none."""
    import colorsys

    out = []
    for i in range(n):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.65, 0.95 if i % 2 == 0 else 0.7)
        out.append((int(r * 255), int(g * 255), int(b * 255)))
    return out


def _files_by_stem(folder: Path, stem_fn=lambda s: s) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for f in sorted(folder.iterdir()):
        if not f.is_file() or f.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        key = stem_fn(f.stem)
        if key in found:
            raise ValueError(f"{str(folder)!r} holds two files for stem {key!r}: {found[key].name} and {f.name}; "
                             "expected one file per stem")
        found[key] = f
    return found


def pair_by_stem(image_dir: Path, mask_dir: Path, image_stem=lambda s: s, mask_stem=lambda s: s):
    """[(image, mask)] matched by stem; an image without a mask is an error."""
    images = _files_by_stem(image_dir, image_stem)
    masks = _files_by_stem(mask_dir, mask_stem) if mask_dir.is_dir() else {}
    missing = [images[k].name for k in images if k not in masks]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise FileNotFoundError(
            f"no mask for image(s) {', '.join(missing[:3])}{more} in {str(image_dir)!r}: expected a file with the "
            f"same stem ({'/'.join(s.lstrip('.') for s in IMAGE_SUFFIXES)}) in {str(mask_dir)!r}")
    return [(images[k], masks[k]) for k in images]


def _ids(raw: np.ndarray, path) -> np.ndarray:
    if raw.ndim != 2:
        raise ValueError(f"mask {str(path)!r} has shape {tuple(raw.shape)}; expected a single band of class ids")
    if raw.dtype.kind == "f":
        finite = np.isfinite(raw)
        if np.any(raw[finite] != np.round(raw[finite])):
            raise ValueError(f"mask {str(path)!r} holds non-integer values; expected integer class ids")
        out = np.full(raw.shape, IGNORE, dtype=np.int64)
        out[finite] = raw[finite].astype(np.int64)
        return out
    if raw.dtype.kind not in "iub":
        raise ValueError(f"mask {str(path)!r} has dtype {raw.dtype}; expected integer class ids")
    return raw.astype(np.int64)


def decode_colours(raw: np.ndarray, path, colours, extra=None) -> np.ndarray:
    """(H, W, 3) colour-coded labels -> (H, W) ids; colours[i] is class i, extra maps more
    colours to ids (e.g. the ISPRS boundary black to ignore). Any other colour is an error:
    it means the wrong format or a lossy (JPEG) mask."""
    table = {(int(r) << 16) | (int(g) << 8) | int(b): i for i, (r, g, b) in enumerate(colours)}
    for (r, g, b), i in (extra or {}).items():
        table[(r << 16) | (g << 8) | b] = i
    rgb = raw.astype(np.int64)
    codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    uniq, inverse = np.unique(codes, return_inverse=True)
    lut = np.empty(len(uniq), dtype=np.int64)
    for j, c in enumerate(uniq.tolist()):
        if c not in table:
            known = ", ".join(str(tuple(col)) for col in colours)
            raise ValueError(f"mask {str(path)!r} holds colour {(c >> 16, (c >> 8) & 255, c & 255)}, which is no "
                             f"class of this format; expected one of {known}")
        lut[j] = table[c]
    return lut[inverse.reshape(codes.shape)]


@dataclass(frozen=True)
class Format:
    name: str
    classes: tuple | None
    palette: tuple | None
    find: Callable[[Path, str], list]
    decode: Callable[[np.ndarray, object], np.ndarray]
    layout: str  # what the error for an empty split shows the user


def _folder_find(root: Path, split: str):
    d = root / split
    if not (d / "images").is_dir():
        return []
    return pair_by_stem(d / "images", d / "masks")


def _loveda_find(root: Path, split: str):
    d = root / split.capitalize()
    pairs = []
    for domain in ("Urban", "Rural"):
        if (d / domain / "images_png").is_dir():
            pairs += pair_by_stem(d / domain / "images_png", d / domain / "masks_png")
    return pairs


def _loveda_decode(raw, path):
    ids = _ids(raw, path)
    # LoveDA's raw 0 is no-data; classes are 1..7.
    return np.where(ids == 0, IGNORE, ids - 1)


_POTSDAM_IMAGE = re.compile(r"_(RGB|IRRG|RGBIR)$")
_POTSDAM_MASK = re.compile(r"_label(_noBoundary)?$")


def _isprs_find(root: Path, split: str):
    # GeoSeg validates Vaihingen/Potsdam on the test tiles: "val" falls back to "test".
    for s in ([split, "test"] if split == "val" else [split]):
        if (root / s / "images_1024").is_dir():
            return pair_by_stem(root / s / "images_1024", root / s / "masks_1024")
        if (root / f"{s}_images").is_dir():
            masks = root / f"{s}_masks"
            if s != "train" and (root / f"{s}_masks_eroded").is_dir():
                masks = root / f"{s}_masks_eroded"  # boundaries black: ignored as the benchmark does
            return pair_by_stem(root / f"{s}_images", masks,
                                lambda t: _POTSDAM_IMAGE.sub("", t), lambda t: _POTSDAM_MASK.sub("", t))
    return []


def _isprs_decode(raw, path):
    if raw.ndim == 3:
        return decode_colours(raw, path, ISPRS_PALETTE, extra={(0, 0, 0): IGNORE})
    ids = _ids(raw, path)
    # GeoSeg's converted ISPRS masks mark ignored pixels (boundaries) with 6 = len(classes).
    return np.where(ids == len(ISPRS_CLASSES), IGNORE, ids)


def _uavid_find(root: Path, split: str):
    if (root / split / "images").is_dir():
        return pair_by_stem(root / split / "images", root / split / "masks")
    pairs = []
    orig = root / f"uavid_{split}"
    if orig.is_dir():
        for seq in sorted(p for p in orig.iterdir() if p.is_dir()):
            if (seq / "Images").is_dir():
                pairs += pair_by_stem(seq / "Images", seq / "Labels")
    return pairs


def _uavid_decode(raw, path):
    if raw.ndim == 3:
        return decode_colours(raw, path, UAVID_PALETTE)
    return _ids(raw, path)


FORMATS: dict[str, Format] = {
    "folder": Format("folder", None, None, _folder_find, _ids,
                     "ROOT/{split}/images/<stem>.<tif|tiff|png|jpg> with masks in ROOT/{split}/masks/"),
    "loveda": Format("loveda", LOVEDA_CLASSES, LOVEDA_PALETTE, _loveda_find, _loveda_decode,
                     "ROOT/{Split}/{Urban,Rural}/images_png with masks_png (Split: Train, Val, Test)"),
    "potsdam": Format("potsdam", ISPRS_CLASSES, ISPRS_PALETTE, _isprs_find, _isprs_decode,
                      "ROOT/{split}/images_1024 with masks_1024, or ROOT/{split}_images with {split}_masks"),
    "vaihingen": Format("vaihingen", ISPRS_CLASSES, ISPRS_PALETTE, _isprs_find, _isprs_decode,
                        "ROOT/{split}/images_1024 with masks_1024, or ROOT/{split}_images with {split}_masks"),
    "uavid": Format("uavid", UAVID_CLASSES, UAVID_PALETTE, _uavid_find, _uavid_decode,
                    "ROOT/{split}/images with masks, or ROOT/uavid_{split}/<seq>/Images with Labels"),
}


def get_format(name: str) -> Format:
    if name not in FORMATS:
        raise ValueError(f"format={name!r} is unknown; expected one of {', '.join(FORMATS)}")
    return FORMATS[name]
