"""Reading images and turning them into network input, with numpy only (plus Pillow for
PNG/JPEG/TIFF, rasterio for TIFF when installed). Shared by the runtime and by INT8
calibration, so both see the same preprocessing as training.

Pixels are read at their native precision (uint8, uint16, int16, int32, float32, ...):
nothing is clipped or cut to 8 bits here; what the values mean is the bundle's business
(input.pixel_dtype, input.scale, normalize). Bands are never dropped or repeated
silently: an image whose band count does not fit is refused with the reason, unless the
caller picks bands (bands=[1, 2, 3], 1-based as in GDAL) or asks for a grey band to be
repeated (replicate_grey). A declared alpha band (Pillow RGBA/LA/PA, a rasterio band
whose colour interpretation is alpha) is never a model band: it becomes a validity mask,
alpha 0 meaning nodata.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".npy")
# ImageNet statistics in 0-255 units: what GeoSeg's models are trained with.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
# 10k x 10k: about 1 GB for `effseg run` on an 8-bit RGB image (image, labels, colour
# mask and one strip of tiles). Pillow's own bomb limit (~179 M pixels) is far above what
# its unstreamed decode then costs, and .npy files have no limit at all.
DEFAULT_MAX_PIXELS = 100_000_000
_GDAL_NODATA_TAG = 42113
# Pillow modes whose samples are kept as they are (one band, native precision).
_SINGLE_BAND = ("L", "I", "F", "I;16", "I;16L", "I;16B", "I;16N")


@dataclass
class Raster:
    """An image as read: pixels (H, W, B) at native precision (a read-only memory map for
    .npy), valid (H, W) bool where a declared alpha band is non-zero (None: no alpha), and
    the file's own nodata value (None: none declared)."""
    pixels: np.ndarray
    valid: np.ndarray | None = None
    nodata: float | None = None


def list_images(path) -> list[Path]:
    """A file, or the image files of a folder (sorted, not recursive)."""
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise FileNotFoundError(f"input {str(p)!r} is neither an image file nor a folder")
    files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise FileNotFoundError(f"folder {str(p)!r} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def check_max_pixels(max_pixels) -> int | None:
    if max_pixels is not None and (not isinstance(max_pixels, int) or isinstance(max_pixels, bool)
                                   or max_pixels < 1):
        raise ValueError(f"max_pixels must be a positive integer or None, got {max_pixels!r}")
    return max_pixels


def _check_size(name: str, h: int, w: int, max_pixels: int | None) -> None:
    if max_pixels is not None and h * w > max_pixels:
        raise ValueError(f"image {name} is {w}x{h} = {h * w:,} pixels, more than max_pixels {max_pixels:,}; "
                         "raise the limit (effseg run --max-pixels N, Predictor(max_pixels=N)) if the memory "
                         "is there (about 10 bytes per pixel for 8-bit RGB)")


def _parse_nodata(text, name: str) -> float | None:
    try:
        v = float(str(text).strip().strip("\x00"))
    except ValueError as exc:
        raise ValueError(f"image {name}: its GDAL_NODATA tag {text!r} is not a number") from exc
    # NaN needs no value: every non-finite pixel is nodata anyway.
    return v if np.isfinite(v) else None


def _read_npy(p: Path, channels: int, max_pixels) -> Raster:
    # A memory map: only the strips being predicted are read, whatever the file's size.
    img = np.load(p, mmap_mode="r", allow_pickle=False)
    if img.dtype.kind not in "uif":
        raise ValueError(f"image {p.name} holds {img.dtype} values; expected integers or floats")
    if img.ndim == 3 and img.shape[-1] != channels and (img.shape[0] == channels or img.shape[0] < img.shape[-1]):
        img = np.transpose(img, (1, 2, 0))  # (B, H, W): bands first
    if img.ndim not in (2, 3):
        raise ValueError(f"image {p.name} has shape {tuple(img.shape)}; expected (H, W), (H, W, B) or (B, H, W)")
    _check_size(p.name, img.shape[0], img.shape[1], max_pixels)
    return Raster(img)


def _read_rasterio(p: Path, max_pixels) -> Raster:
    import rasterio
    from rasterio.enums import ColorInterp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(p) as src:
            _check_size(p.name, src.height, src.width, max_pixels)
            alpha = [i for i, c in enumerate(src.colorinterp) if c == ColorInterp.alpha]
            data = np.transpose(src.read(), (1, 2, 0))
            nodata = src.nodata
    valid = None
    if alpha:
        valid = data[:, :, alpha[0]] != 0
        data = np.delete(data, alpha, axis=2)
    return Raster(data, valid, nodata if nodata is not None and np.isfinite(nodata) else None)


def _sixteen_bit_rgb(im) -> bool:
    """Pillow holds RGB in 8 bits and decodes 16-bit RGB files to their high byte."""
    for t in getattr(im, "tile", None) or ():
        args = t[3] if len(t) > 3 else None
        rawmode = args[0] if isinstance(args, tuple) and args else args
        if isinstance(rawmode, str) and "16" in rawmode:
            return True
    return False


def _read_pillow(p: Path, max_pixels) -> Raster:
    try:
        from PIL import Image
    except ImportError as exc:
        raise RuntimeError(f"reading {p.name} needs Pillow: pip install pillow") from exc
    try:
        with warnings.catch_warnings():
            # max_pixels is the limit that counts; Pillow's warning would only repeat it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(p)
    except Image.DecompressionBombError as exc:
        raise ValueError(f"image {p.name} is larger than Pillow's own limit (PIL.Image.MAX_IMAGE_PIXELS): "
                         f"{exc}") from exc
    with im:
        _check_size(p.name, im.height, im.width, max_pixels)
        nodata = None
        tags = getattr(im, "tag_v2", None)
        if tags is not None and _GDAL_NODATA_TAG in tags:
            nodata = _parse_nodata(tags[_GDAL_NODATA_TAG], p.name)
        mode = im.mode
        if mode in ("RGB", "RGBA") and _sixteen_bit_rgb(im):
            raise ValueError(f"image {p.name} is 16-bit {mode}, which Pillow can only read cut to 8 bits: "
                             "save it as .npy (H, W, B) or install rasterio (pip install 'effseg[geo]') for TIFF")
        if mode == "1":
            im = im.convert("L")
        elif mode == "P":
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        elif mode == "PA":
            im = im.convert("RGBA")
        elif mode in ("YCbCr", "LAB", "HSV", "RGBX"):
            im = im.convert("RGB")
        elif mode not in _SINGLE_BAND + ("LA", "RGB", "RGBA", "CMYK"):
            raise ValueError(f"image {p.name} has Pillow mode {mode!r}, which effseg does not read; "
                             "save it as .npy (H, W, B)")
        img = np.asarray(im)
    if img.dtype.byteorder not in ("=", "|"):
        img = img.astype(img.dtype.newbyteorder("="))
    if img.ndim == 2:
        return Raster(img[:, :, None], None, nodata)
    valid = None
    if im.mode in ("LA", "RGBA"):
        valid = img[:, :, -1] != 0
        img = img[:, :, :-1]
    return Raster(img, valid, nodata)


def fit_bands(img: np.ndarray, channels: int, *, bands=None, replicate_grey: bool = False,
              name: str = "image") -> np.ndarray:
    """(H, W, B) -> (H, W, channels): the 1-based `bands` when given, a single band
    repeated when replicate_grey, else the image as it is if B == channels; any other
    fit is refused with the reason."""
    if img.ndim == 2:
        img = img[:, :, None]
    b = img.shape[-1]
    if bands is not None:
        bands = check_bands(bands)
        if max(bands) > b:
            raise ValueError(f"bands {list(bands)} asks for band {max(bands)}, but image {name} has {b} band(s)")
        idx = [i - 1 for i in bands]
        if idx == list(range(idx[0], idx[0] + len(idx))):
            img = img[:, :, idx[0]:idx[0] + len(idx)]  # a view: a memory map stays unread
        else:
            img = img[:, :, idx]
        b = img.shape[-1]
    if b == channels:
        return img
    if b == 1 and replicate_grey:
        return np.broadcast_to(img, img.shape[:2] + (channels,))
    if b == 1:
        raise ValueError(f"image {name} has 1 band (grey), but the model takes {channels}: pass --replicate-grey "
                         "(replicate_grey=True) to repeat it in every band, if that is what the model was trained on")
    raise ValueError(f"image {name} has {b} bands, but the model takes {channels}: choose {channels} with "
                     f"--bands (bands=[...], 1-based, e.g. {','.join(str(i + 1) for i in range(channels))})")


def check_bands(bands) -> tuple[int, ...]:
    if isinstance(bands, str):
        try:
            bands = [int(x) for x in bands.split(",")]
        except ValueError as exc:
            raise ValueError(f"bands must be 1-based band numbers like '1,2,3', got {bands!r}") from exc
    try:
        bands = tuple(bands)
    except TypeError as exc:
        raise ValueError(f"bands must be a list of 1-based band numbers, got {bands!r}") from exc
    if not bands or not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) and i >= 1 for i in bands):
        raise ValueError(f"bands must be a non-empty list of 1-based band numbers, got {list(bands)!r}")
    return tuple(int(i) for i in bands)


def read_raster(path, channels: int = 3, *, bands=None, replicate_grey: bool = False,
                max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Raster:
    """An image file as a Raster whose pixels are (H, W, channels) at native precision.

    .npy files hold (H, W), (H, W, B) or (B, H, W) arrays (bands first when that axis
    is the model's channel count or the shorter one); TIFFs go through rasterio when it
    is installed (16-bit RGB, many bands, nodata, alpha), everything else through Pillow.
    Images over max_pixels (H x W) are refused before they are decoded.
    """
    p = Path(path)
    max_pixels = check_max_pixels(max_pixels)
    suffix = p.suffix.lower()
    if suffix == ".npy":
        r = _read_npy(p, channels, max_pixels)
    elif suffix in (".tif", ".tiff") and _has_rasterio():
        r = _read_rasterio(p, max_pixels)
    else:
        r = _read_pillow(p, max_pixels)
    r.pixels = fit_bands(r.pixels, channels, bands=bands, replicate_grey=replicate_grey, name=p.name)
    return r


def read_image(path, channels: int = 3, **kw) -> np.ndarray:
    """An image as an (H, W, channels) array at native precision (uint8 for 8-bit files);
    keyword arguments as read_raster. Alpha and nodata are dropped: use read_raster to keep them."""
    return read_raster(path, channels, **kw).pixels


def _has_rasterio() -> bool:
    try:
        import rasterio  # noqa: F401
    except ImportError:
        return False
    return True


def normalize(img: np.ndarray, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> np.ndarray:
    """(H, W, C) image in 0-255 units -> (C, H, W) float32, (img - mean) / std per channel."""
    if img.ndim != 3:
        raise ValueError(f"img must be (H, W, C), got shape {tuple(img.shape)}")
    c = img.shape[-1]
    mean = np.asarray(mean, dtype=np.float32).reshape(-1)
    std = np.asarray(std, dtype=np.float32).reshape(-1)
    if mean.size != c or std.size != c:
        raise ValueError(f"mean and std need {c} values (one per channel), got {mean.size} and {std.size}")
    if np.any(std <= 0):
        raise ValueError(f"std must be positive, got {std.tolist()}")
    x = (img.astype(np.float32) - mean) / std
    return np.ascontiguousarray(np.transpose(x, (2, 0, 1)))
