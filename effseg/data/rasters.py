"""Reading image and mask files for the datasets: PNG/JPEG with Pillow alone, GeoTIFF with
rasterio (the `geo` extra). Images keep their band count and dtype; a validity mask travels
with them so nodata never turns into a class or a statistic."""
from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
TIFF_SUFFIXES = (".tif", ".tiff")


def rasterio_or_raise(what: str):
    try:
        import rasterio
        import rasterio.errors
    except ImportError as exc:
        raise RuntimeError(f"{what} needs rasterio, which is not installed: "
                           "pip install 'effseg[geo]' (or pip install rasterio)") from exc
    return rasterio


@contextlib.contextmanager
def open_raster(rasterio, path):
    """rasterio.open without NotGeoreferencedWarning: plain TIFF tiles and masks are
    normal training data, and the warning gives the user nothing to act on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        src = rasterio.open(path)
    with src:
        yield src


def _pillow_or_raise(what: str):
    try:
        from PIL import Image
    except ImportError as exc:
        raise RuntimeError(f"{what} needs Pillow: pip install pillow") from exc
    return Image


def nodata_valid(img: np.ndarray, nodata) -> np.ndarray:
    """(H, W) bool: False where any band holds its nodata value or is NaN/Inf.

    Any band, not all: a pixel with one missing band cannot be fed to the net as it is.
    `nodata` is None, one value, or one value per band (None entries allowed)."""
    valid = np.ones(img.shape[:2], dtype=bool)
    if img.dtype.kind == "f":
        valid &= np.isfinite(img).all(axis=-1)
    if nodata is None:
        return valid
    values = list(nodata) if isinstance(nodata, (list, tuple)) else [nodata] * img.shape[-1]
    for b, v in enumerate(values):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            continue  # NaN nodata is already covered by the finiteness check
        valid &= img[..., b] != np.asarray(v).astype(img.dtype)
    return valid


def read_raster(path, bands=None) -> tuple[np.ndarray, np.ndarray]:
    """An image file as ((H, W, C) array in its own dtype, (H, W) bool validity).

    bands: 0-based band indices to keep (None: all). GeoTIFF nodata values and NaN/Inf
    pixels are invalid; PNG/JPEG have no nodata (every finite pixel is valid)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        rasterio = rasterio_or_raise(f"reading GeoTIFF {str(p)!r}")
        with open_raster(rasterio, p) as src:
            indexes = None if bands is None else [_band_index(b, src.count, p) + 1 for b in bands]
            img = src.read(indexes)
            nodata = list(src.nodatavals)
        if indexes is not None:
            nodata = [nodata[i - 1] for i in indexes]
        img = np.moveaxis(img, 0, -1)
        return img, nodata_valid(img, nodata)
    if suffix not in IMAGE_SUFFIXES:
        raise ValueError(f"file {str(p)!r} has suffix {suffix!r}; expected one of {', '.join(IMAGE_SUFFIXES)}")
    Image = _pillow_or_raise(f"reading {str(p)!r}")
    with Image.open(p) as im:
        if im.mode == "P":
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        img = np.asarray(im)
    if img.ndim == 2:
        img = img[:, :, None]
    if bands is not None:
        img = img[..., [_band_index(b, img.shape[-1], p) for b in bands]]
    return img, nodata_valid(img, None)


def read_label(path) -> tuple[np.ndarray, np.ndarray]:
    """A mask file as its raw values ((H, W) or (H, W, 3) for RGB-coded labels) and the
    (H, W) validity from the file's own nodata. Palette PNGs give their indices, which is
    how class-id masks are usually stored; format decoders turn colours into ids."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        rasterio = rasterio_or_raise(f"reading GeoTIFF mask {str(p)!r}")
        with open_raster(rasterio, p) as src:
            raw = np.moveaxis(src.read(), 0, -1)
            nodata = list(src.nodatavals)
        valid = nodata_valid(raw, nodata)
    else:
        if suffix not in IMAGE_SUFFIXES:
            raise ValueError(f"mask {str(p)!r} has suffix {suffix!r}; expected one of {', '.join(IMAGE_SUFFIXES)}")
        Image = _pillow_or_raise(f"reading mask {str(p)!r}")
        with Image.open(p) as im:
            raw = np.asarray(im)
        valid = np.ones(raw.shape[:2], dtype=bool)
    if raw.ndim == 3 and raw.shape[-1] == 1:
        raw = raw[..., 0]
    if raw.ndim == 3 and raw.shape[-1] == 4:
        raw = raw[..., :3]  # RGBA colour-coded labels: the alpha carries no class
    return raw, valid


def raster_shape(path) -> tuple[int, int, int]:
    """(height, width, bands) of an image file without reading its pixels."""
    p = Path(path)
    if p.suffix.lower() in TIFF_SUFFIXES:
        rasterio = rasterio_or_raise(f"reading GeoTIFF {str(p)!r}")
        with open_raster(rasterio, p) as src:
            return src.height, src.width, src.count
    Image = _pillow_or_raise(f"reading {str(p)!r}")
    with Image.open(p) as im:
        bands = len(im.getbands()) if im.mode != "P" else 3
        return im.height, im.width, bands


def _band_index(b, count: int, path: Path) -> int:
    if not isinstance(b, (int, np.integer)) or not 0 <= b < count:
        raise ValueError(f"bands entry {b!r} is not a band of {str(path)!r}: expected an int in 0..{count - 1}")
    return int(b)
