"""Reading images and turning them into network input, with numpy only (plus Pillow for
PNG/JPEG/TIFF, rasterio for GeoTIFF when installed). Shared by the runtime and by INT8
calibration, so both see the same preprocessing as training."""
from __future__ import annotations

from pathlib import Path

import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".npy")
# ImageNet statistics in 0-255 units: what GeoSeg's models are trained with.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


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


def read_image(path, channels: int = 3) -> np.ndarray:
    """An image as an (H, W, channels) array (uint8 for 8-bit files).

    .npy files are taken as (H, W, C) or (C, H, W) arrays; multi-band GeoTIFFs need
    rasterio; everything else goes through Pillow, converted to RGB when channels == 3.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".npy":
        img = np.load(p, allow_pickle=False)
        if img.ndim == 3 and img.shape[0] == channels and img.shape[-1] != channels:
            img = np.transpose(img, (1, 2, 0))
    elif suffix in (".tif", ".tiff") and channels != 3:
        try:
            import rasterio
        except ImportError as exc:
            raise RuntimeError(f"reading {channels}-band GeoTIFF {p.name} needs rasterio: "
                               "pip install 'effseg[geo]'") from exc
        with rasterio.open(p) as src:
            img = np.transpose(src.read(), (1, 2, 0))
    else:
        try:
            from PIL import Image
        except ImportError as exc:
            raise RuntimeError(f"reading {p.name} needs Pillow: pip install pillow") from exc
        with Image.open(p) as im:
            img = np.asarray(im.convert("RGB") if channels == 3 else im)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[-1] != channels:
        raise ValueError(f"image {p.name} has shape {tuple(img.shape)}; expected (H, W, {channels})")
    return img


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
