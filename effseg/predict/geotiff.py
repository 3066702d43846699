"""Windowed GeoTIFF / COG / VRT / PNG / JPEG reading and tiled GeoTIFF writing with
rasterio: no call reads or writes more than one tile (input) or one block row (output),
so memory does not grow with the raster's area.

Torch-free on purpose (numpy, rasterio and effseg.runtime only): a bundle runs on a
device without torch, and so must the GeoTIFF path.
"""
from __future__ import annotations

import contextlib
import json
import os
import warnings
from pathlib import Path

import numpy as np

from ..runtime.images import check_bands
from ..runtime.tiling import reflect_index

# GDAL's block cache defaults to 5 % of RAM: on a large machine that alone would make the
# resident memory grow with the raster. Tiles are read in row-major order, so one row of
# source blocks (two where tile rows straddle them) is all the cache needs to hold.
GDAL_CACHE_MB = 128
DEFAULT_BLOCK = 512


def rasterio_or_raise():
    try:
        import rasterio
    except ImportError as exc:
        raise RuntimeError("effseg predict reads and writes rasters with rasterio, which is not installed: "
                           "pip install 'effseg[geo]' (or pip install rasterio)") from exc
    return rasterio


@contextlib.contextmanager
def gdal_env():
    rasterio = rasterio_or_raise()
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
        yield rasterio


def read_window(src, indexes, window) -> np.ndarray:
    """(bands, h, w) pixels of a window: the one place pixels are read (tests record it)."""
    return src.read(indexes, window=window)


def read_mask_window(src, indexes, window) -> np.ndarray:
    return src.read_masks(indexes, window=window)


class RasterSource:
    """An open raster seen through the model: the bands it feeds (1-based), checked
    against the model's channel count and pixel type, read tile by tile."""

    def __init__(self, path, channels: int, pixel_dtype: str, *, bands=None, replicate_grey: bool = False):
        rasterio = rasterio_or_raise()
        from rasterio.enums import ColorInterp, MaskFlags

        self.path = Path(path)
        with warnings.catch_warnings():
            # PNG/JPEG and plain TIFFs have no georeference: the output then has none either.
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            try:
                self.src = rasterio.open(self.path)
            except rasterio.errors.RasterioIOError as exc:
                raise ValueError(f"input {str(self.path)!r} cannot be opened as a raster: {exc}") from exc
        try:
            self._pick_bands(channels, bands, replicate_grey, ColorInterp)
            dtypes = {self.src.dtypes[b - 1] for b in self.indexes}
            if len(dtypes) != 1:
                raise ValueError(f"input {self.path.name}: bands {list(self.indexes)} have different types "
                                 f"{sorted(dtypes)}; choose bands of one type with --bands")
            self.dtype = np.dtype(dtypes.pop())
            if self.dtype.kind in "ui" and self.dtype != np.dtype(pixel_dtype):
                raise ValueError(f"input {self.path.name} holds {self.dtype} pixels, but the model takes "
                                 f"{pixel_dtype} pixels (meta.json input.pixel_dtype {pixel_dtype!r}): export a "
                                 f"bundle for {self.dtype} data (pixel_dtype and scale or mean/std in its units)")
            if self.dtype.kind not in "uif":
                raise ValueError(f"input {self.path.name} holds {self.dtype} pixels; expected integers or floats")
            flags = [self.src.mask_flag_enums[b - 1] for b in self.indexes]
            # GDAL's masks already say nodata value / alpha / internal mask per band.
            self.has_mask = any(f != [MaskFlags.all_valid] for f in flags)
        except Exception:
            self.src.close()
            raise

    def _pick_bands(self, channels, bands, replicate_grey, ColorInterp):
        count = self.src.count
        name = self.path.name
        picked = bands is not None
        if picked:
            bands = check_bands(bands)
            if max(bands) > count:
                raise ValueError(f"--bands {','.join(map(str, bands))} asks for band {max(bands)}, but input {name} "
                                 f"has {count} band(s)")
        else:
            # An alpha band is a validity mask (GDAL's read_masks reads it), never a model band.
            bands = tuple(i + 1 for i, c in enumerate(self.src.colorinterp) if c != ColorInterp.alpha) or (1,)
        self.replicate = False
        if len(bands) != channels:
            if len(bands) == 1 and replicate_grey:
                self.replicate = True
            elif len(bands) == 1 and not picked:
                raise ValueError(f"input {name} has 1 band (grey), but the model takes {channels}: pass "
                                 "--replicate-grey to repeat it in every channel, if that is what the model "
                                 "was trained on")
            elif picked:
                raise ValueError(f"--bands {','.join(map(str, bands))} picks {len(bands)} band(s), but the model "
                                 f"takes {channels}")
            else:
                example = ",".join(str(i + 1) for i in range(channels))
                raise ValueError(f"input {name} has {len(bands)} band(s) to feed the model, but the model takes "
                                 f"{channels}: choose {channels} with --bands (1-based, e.g. --bands {example})")
        self.indexes = tuple(bands)
        self.channels = channels

    @property
    def height(self) -> int:
        return self.src.height

    @property
    def width(self) -> int:
        return self.src.width

    @property
    def nodata(self):
        v = self.src.nodata
        return v if v is not None and np.isfinite(v) else None

    def block_shape(self) -> tuple[int, int]:
        """The source's block layout when it is tiled in square blocks of 256 or more (a
        multiple of 16, as GeoTIFF tiles must be), else DEFAULT_BLOCK: strips are a poor
        layout for a class map, and a VRT's 128-px blocks are GDAL's default, not a choice."""
        bh, bw = self.src.block_shapes[0]
        if bh == bw and bh % 16 == 0 and bh >= 256 and not (bh == self.height and bw == self.width):
            return bh, bw
        return DEFAULT_BLOCK, DEFAULT_BLOCK

    def read_tile(self, y: int, x: int, th: int, tw: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Pixels (th, tw, channels) of the tile at (y, x), extended past the bottom/right
        by reflection as runtime.tiling does, and the (th, tw) validity from GDAL's masks
        (None: no mask). Reads only the window the tile needs."""
        from rasterio.windows import Window

        ri = reflect_index(y, y + th, self.height)
        ci = reflect_index(x, x + tw, self.width)
        r0, c0 = int(ri.min()), int(ci.min())
        win = Window(c0, r0, int(ci.max()) + 1 - c0, int(ri.max()) + 1 - r0)
        px = read_window(self.src, list(self.indexes), win)
        valid = None
        if self.has_mask:
            valid = read_mask_window(self.src, list(self.indexes), win).any(axis=0)
        if ri[-1] - ri[0] != th - 1 or ci[-1] - ci[0] != tw - 1:  # reflected: not one contiguous window
            px = px[:, ri - r0][:, :, ci - c0]
            valid = None if valid is None else valid[ri - r0][:, ci - c0]
        px = np.moveaxis(px, 0, -1)
        if self.replicate:
            px = np.broadcast_to(px, px.shape[:2] + (self.channels,))
        return px, valid

    def close(self) -> None:
        self.src.close()


def colormap(palette) -> dict:
    return {i: tuple(int(v) for v in c) + (255,) for i, c in enumerate(palette)}


class ClassMapWriter:
    """A tiled, deflate-compressed GeoTIFF with the source's size, CRS, transform and block
    layout, written one block row at a time. Rows arrive in order; they are buffered until
    a whole block row is there, because GDAL rewrites (and, compressed, appends again) a
    block that is written in parts."""

    def __init__(self, path: Path, source: RasterSource, *, count: int, nodata: int | None, dtype=np.uint8,
                 palette=None, tags: dict | None = None, band_tags: list | None = None):
        rasterio = rasterio_or_raise()
        self.path = Path(path)
        bh, bw = source.block_shape()
        profile = dict(driver="GTiff", width=source.width, height=source.height, count=count, dtype=np.dtype(dtype),
                       crs=source.src.crs, transform=source.src.transform, tiled=True, blockxsize=bw,
                       blockysize=bh, compress="deflate", nodata=nodata, BIGTIFF="IF_SAFER")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            self.dst = rasterio.open(self.path, "w", **profile)
        if palette is not None:
            self.dst.write_colormap(1, colormap(palette))
        if tags:
            self.dst.update_tags(**tags)
        for b, t in enumerate(band_tags or (), start=1):
            self.dst.update_tags(b, **t)
            if "class" in t:
                self.dst.set_band_description(b, t["class"])
        self.bh = bh
        self.width = source.width
        self.buf = np.zeros((count, bh, source.width), dtype)
        self.row0 = 0  # first image row held in buf
        self.filled = 0

    def write_rows(self, r0: int, rows: np.ndarray) -> None:
        """rows: (count, n, W) or (n, W) for image rows [r0, r0 + n), in order."""
        from rasterio.windows import Window

        if rows.ndim == 2:
            rows = rows[None]
        if r0 != self.row0 + self.filled:
            raise ValueError(f"rows must arrive in order: expected row {self.row0 + self.filled}, got {r0}")
        i = 0
        n = rows.shape[1]
        while i < n:
            take = min(self.bh - self.filled, n - i)
            self.buf[:, self.filled:self.filled + take] = rows[:, i:i + take]
            self.filled += take
            i += take
            if self.filled == self.bh:
                self.dst.write(self.buf, window=Window(0, self.row0, self.width, self.bh))
                self.row0 += self.bh
                self.filled = 0

    def close(self) -> None:
        from rasterio.windows import Window

        if self.filled:
            self.dst.write(self.buf[:, :self.filled], window=Window(0, self.row0, self.width, self.filled))
            self.filled = 0
        self.dst.close()


def to_cog(tmp: Path, final: Path, block: int) -> None:
    """Rewrite a tiled GeoTIFF as a Cloud-Optimised GeoTIFF (GDAL's COG driver: overviews
    by nearest neighbour, which is the only resampling a class map survives)."""
    rasterio = rasterio_or_raise()
    from rasterio.shutil import copy

    copy(str(tmp), str(final), driver="COG", COMPRESS="DEFLATE", BLOCKSIZE=block, OVERVIEW_RESAMPLING="NEAREST",
         BIGTIFF="IF_SAFER")
    del rasterio


def class_tags(classes: list[str]) -> dict:
    """Class names in the file: one CLASS_<i> tag each and the list as JSON."""
    tags = {f"CLASS_{i}": name for i, name in enumerate(classes)}
    tags["CLASSES"] = json.dumps(list(classes))
    return tags


def replace(tmp: Path, final: Path) -> None:
    os.replace(tmp, final)
