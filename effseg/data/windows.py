"""GeoWindows: training windows cut from pairs of large GeoTIFFs (image, label) with
rasterio windowed reads, so a 20k x 20k scene is never read whole."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from .folder import check_labels
from .formats import IGNORE
from .rasters import nodata_valid, rasterio_or_raise
from .stats import compute_band_stats, to_sample


def _open(path):
    rasterio = rasterio_or_raise(f"reading windows of GeoTIFF {str(path)!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        return rasterio.open(path)


class GeoWindows(torch.utils.data.Dataset):
    """size x size windows of (image, label) GeoTIFF pairs, as SegFolder items.

    mode="grid": every window on a grid of `stride` (default size), the last row/column
    moved back to the raster's edge so every pixel is covered. mode="random": `length`
    windows (default: as many as the grid has), item i drawn from (seed, epoch, i): a pair
    chosen in proportion to its area, then a uniform offset. Rasters smaller than `size` are
    padded (mask 255, image invalid).
    label_map: {raw value: class id} or a function on the raw label array; unmapped raw
    values are an error. num_classes defaults to max(label_map values) + 1.
    stats: as in SegFolder; None computes them from the first `stats_windows` windows.
    """

    def __init__(self, pairs, size: int, mode: str = "random", length: int | None = None,
                 stride: int | None = None, seed: int = 0, bands=None, stats: dict | None = None,
                 num_classes: int | None = None, label_map=None, transform=None, stats_windows: int = 64):
        if isinstance(pairs, tuple) and len(pairs) == 2 and not isinstance(pairs[0], (tuple, list)):
            pairs = [pairs]
        self.pairs = [(Path(a), Path(b)) for a, b in pairs]
        if not self.pairs:
            raise ValueError("pairs is empty; expected [(image.tif, label.tif), ...]")
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive int (window side in pixels), got {size!r}")
        if mode not in ("random", "grid"):
            raise ValueError(f"mode must be 'random' or 'grid', got {mode!r}")
        self.size, self.mode, self.seed, self.epoch = size, mode, int(seed), 0
        self.stride = size if stride is None else stride
        if not isinstance(self.stride, int) or self.stride < 1:
            raise ValueError(f"stride must be a positive int, got {stride!r}")
        self.bands = None if bands is None else [int(b) for b in bands]
        self.label_map, self.transform, self.stats_windows = label_map, transform, stats_windows
        self._handles: dict = {}
        self.shapes = []  # (height, width) per pair
        for img, lab in self.pairs:
            a, b = self._handle(img), self._handle(lab)
            if (a.height, a.width) != (b.height, b.width):
                raise ValueError(f"image {str(img)!r} is {a.height}x{a.width} but its label {str(lab)!r} is "
                                 f"{b.height}x{b.width}; expected the same size")
            if b.count != 1:
                raise ValueError(f"label {str(lab)!r} has {b.count} bands; expected one band of class values")
            for band in self.bands or []:
                if not 0 <= band < a.count:
                    raise ValueError(f"bands entry {band} is not a band of {str(img)!r} (0..{a.count - 1})")
            self.shapes.append((a.height, a.width))
        self.grid = [(p, r, c) for p, (h, w) in enumerate(self.shapes)
                     for r in _starts(h, size, self.stride) for c in _starts(w, size, self.stride)]
        self.length = len(self.grid) if length is None or mode == "grid" else int(length)
        if num_classes is None:
            if isinstance(label_map, dict):
                num_classes = max(v for v in label_map.values() if v != IGNORE) + 1
            else:
                raise ValueError("num_classes is needed unless label_map is a dict of raw value -> class id")
        self.num_classes = int(num_classes)
        self._stats = stats

    def __getstate__(self):
        # Open rasterio handles cannot cross into DataLoader workers: each reopens its own.
        state = dict(self.__dict__)
        state["_handles"] = {}
        return state

    def _handle(self, path):
        if path not in self._handles:
            self._handles[path] = _open(path)
        return self._handles[path]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def window(self, i: int) -> tuple[int, int, int]:
        """(pair index, row, col) of item i's top-left corner."""
        if not 0 <= i < self.length:
            raise IndexError(f"index {i} out of range for {self.length} windows")
        if self.mode == "grid":
            return self.grid[i]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        areas = np.array([h * w for h, w in self.shapes], dtype=np.float64)
        p = int(rng.choice(len(areas), p=areas / areas.sum()))
        h, w = self.shapes[p]
        return p, int(rng.integers(max(1, h - self.size + 1))), int(rng.integers(max(1, w - self.size + 1)))

    @property
    def stats(self) -> dict:
        if self._stats is None:
            self._stats = compute_band_stats(self, max_items=self.stats_windows)
        return self._stats

    def raw(self, i: int) -> dict:
        from rasterio.windows import Window

        p, row, col = self.window(i)
        img_path, lab_path = self.pairs[p]
        h, w = self.shapes[p]
        win = Window(col, row, min(self.size, w - col), min(self.size, h - row))
        src, lab = self._handle(img_path), self._handle(lab_path)
        indexes = None if self.bands is None else [b + 1 for b in self.bands]
        image = np.moveaxis(src.read(indexes, window=win), 0, -1)
        nodata = list(src.nodatavals) if indexes is None else [src.nodatavals[b - 1] for b in indexes]
        valid = nodata_valid(image, nodata)
        raw = lab.read(1, window=win)
        label_valid = nodata_valid(raw[..., None], lab.nodata)
        mask = self._map(raw, label_valid, lab_path)
        check_labels(mask, self.num_classes, lab_path)
        mask[~valid] = IGNORE
        ph, pw = self.size - image.shape[0], self.size - image.shape[1]
        if ph or pw:
            image = np.pad(image, ((0, ph), (0, pw), (0, 0)))
            valid = np.pad(valid, ((0, ph), (0, pw)), constant_values=False)
            mask = np.pad(mask, ((0, ph), (0, pw)), constant_values=IGNORE)
        return {"image": image, "mask": mask, "valid": valid, "path": str(img_path), "window": (p, row, col)}

    def _map(self, raw: np.ndarray, valid: np.ndarray, path) -> np.ndarray:
        """Raw label values -> class ids; the label file's nodata (and NaN) -> 255."""
        mask = np.full(raw.shape, IGNORE, dtype=np.int64)
        if callable(self.label_map):
            mask[valid] = np.asarray(self.label_map(raw), dtype=np.int64)[valid]
            return mask
        values = raw[valid]
        if self.label_map is None:
            mask[valid] = values.astype(np.int64)
            return mask
        uniq, inverse = np.unique(values, return_inverse=True)
        lut = np.empty(len(uniq), dtype=np.int64)
        for j, v in enumerate(uniq.tolist()):
            if v not in self.label_map:
                raise ValueError(f"label {str(path)!r} holds raw value {v!r}, which label_map does not map; "
                                 f"expected one of {sorted(self.label_map)}")
            lut[j] = self.label_map[v]
        mask[valid] = lut[inverse.reshape(-1)]
        return mask

    def __getitem__(self, i: int):
        item = self.raw(i)
        return to_sample(item, i, self.stats, self.transform, item["path"])


def _starts(extent: int, size: int, stride: int) -> list[int]:
    if extent <= size:
        return [0]
    starts = list(range(0, extent - size + 1, stride))
    if starts[-1] != extent - size:
        starts.append(extent - size)
    return starts
