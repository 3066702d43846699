"""SegFolder: a torch Dataset over a folder layout (generic or GeoSeg's), returning
normalised float32 (C, H, W) images and int64 (H, W) masks with 255 = ignore."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .formats import IGNORE, default_palette, get_format
from .rasters import raster_shape, read_label, read_raster
from .stats import compute_band_stats, to_sample

META_FILE = "classes.json"


def read_meta(root) -> dict:
    """ROOT/classes.json (class names, palette, source), as the sample converters write it."""
    p = Path(root) / META_FILE
    if not p.is_file():
        return {}
    try:
        meta = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{str(p)!r} is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict) or not isinstance(meta.get("classes"), list):
        raise ValueError(f"{str(p)!r} must hold an object with a 'classes' list of names")
    return meta


def check_labels(mask: np.ndarray, num_classes: int, path) -> None:
    bad = (mask != IGNORE) & ((mask < 0) | (mask >= num_classes))
    if bad.any():
        values = np.unique(mask[bad])[:5].tolist()
        raise ValueError(f"mask {str(path)!r} holds label(s) {values}; expected class ids 0..{num_classes - 1} "
                         f"or {IGNORE} (ignore)")


def _pairs(root, split, fmt):
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"root {str(root)!r} is not a folder")
    pairs = fmt.find(root, split)
    if not pairs:
        raise FileNotFoundError(f"split {split!r} of {str(root)!r} (format {fmt.name!r}) holds no images; "
                                f"expected {fmt.layout}")
    return pairs


def infer_num_classes(root, format: str = "folder", split: str = "train") -> int:
    """Classes of a dataset: the format's own list, else ROOT/classes.json, else the largest
    id (other than 255) found in the split's masks plus one."""
    fmt = get_format(format)
    if fmt.classes is not None:
        return len(fmt.classes)
    meta = read_meta(root)
    if meta:
        return len(meta["classes"])
    top = -1
    for _, mask_path in _pairs(root, split, fmt):
        raw, valid = read_label(mask_path)
        ids = fmt.decode(raw, mask_path)
        ids = ids[valid & (ids != IGNORE)]
        if ids.size:
            if ids.min() < 0:
                raise ValueError(f"mask {str(mask_path)!r} holds negative label {int(ids.min())}; "
                                 f"expected class ids >= 0 or {IGNORE}")
            top = max(top, int(ids.max()))
    if top < 0:
        raise ValueError(f"the masks of split {split!r} in {str(root)!r} hold no labelled pixel; "
                         "cannot infer the number of classes: pass num_classes=")
    return top + 1


def infer_bands(root, format: str = "folder", split: str = "train") -> int:
    """Band count of the split's first image (SegFolder checks every item against it)."""
    return raster_shape(_pairs(root, split, get_format(format))[0][0])[2]


class SegFolder(torch.utils.data.Dataset):
    """(image float32 (C, H, W) normalised, mask int64 (H, W)) pairs of ROOT's `split`.

    format: "folder" (ROOT/{split}/{images,masks}/<stem>.<tif|tiff|png|jpg>), "loveda",
    "potsdam", "vaihingen" or "uavid" (GeoSeg's layouts and label codings).
    bands: 0-based band indices to keep (None: all).
    stats: {"mean": [...], "std": [...]} per kept band; None computes them from the train
    split of the same root (nodata excluded) on first use; `self.stats` holds them for the
    checkpoint.
    transform: called with a dict {"image" (C, H, W) float32, "mask" (H, W) int64,
    "valid" (H, W) bool, "index"} after normalisation; returns the dict (see Augment).
    Nodata (a GeoTIFF's nodata value, NaN/Inf, a mask's own nodata) becomes mask 255 and
    image 0.
    """

    def __init__(self, root, split: str = "train", format: str = "folder", bands=None, transform=None,
                 stats: dict | None = None, num_classes: int | None = None):
        self.root = Path(root)
        self.split = split
        self.format = get_format(format)
        self.pairs = _pairs(self.root, split, self.format)
        self.bands = None if bands is None else list(bands)
        self.transform = transform
        meta = read_meta(self.root) if self.format.classes is None else {}
        self.classes = list(self.format.classes or meta.get("classes") or []) or None
        if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 1):
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        self.num_classes = num_classes or (len(self.classes) if self.classes else
                                           infer_num_classes(self.root, format, "train" if split != "train"
                                                             and (self.root / "train").is_dir() else split))
        self.palette = [tuple(c) for c in (self.format.palette or meta.get("palette")
                                           or default_palette(self.num_classes))]
        self._stats = stats

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def stats(self) -> dict:
        if self._stats is None:
            if self.split == "train":
                self._stats = compute_band_stats(self)
            else:
                try:
                    train = SegFolder(self.root, "train", self.format.name, self.bands, num_classes=self.num_classes)
                except FileNotFoundError as exc:
                    raise FileNotFoundError(f"stats=None computes band statistics from the train split, "
                                            f"which is missing ({exc}); pass stats=") from exc
                self._stats = train.stats
        return self._stats

    def raw(self, i: int) -> dict:
        """Item i before normalisation: image (H, W, C) in the file's dtype, mask ids, valid."""
        img_path, mask_path = self.pairs[i]
        image, valid = read_raster(img_path, self.bands)
        raw, mask_valid = read_label(mask_path)
        if raw.shape[:2] != image.shape[:2]:
            raise ValueError(f"image {str(img_path)!r} is {image.shape[0]}x{image.shape[1]} but its mask "
                             f"{str(mask_path)!r} is {raw.shape[0]}x{raw.shape[1]}; expected the same size")
        mask = self.format.decode(raw, mask_path)
        mask[~mask_valid] = IGNORE
        check_labels(mask, self.num_classes, mask_path)
        mask[~valid] = IGNORE  # nodata in the image is never a class
        return {"image": image, "mask": mask, "valid": valid, "path": str(img_path)}

    def __getitem__(self, i: int):
        item = self.raw(i)
        return to_sample(item, i, self.stats, self.transform, f"{self.root} ({item['path']})")
