"""In-memory images (video frames, camera grabs) through the runtime's one tile engine
(effseg.runtime.tiled): the same tiles, test-time augmentation, batching and blended
overlaps as a GeoTIFF, so a frame and the same pixels saved as a PNG get the same class
map, bit for bit. What this adds: predict's options and the frame checks' wording."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..runtime import tiled
from .pipeline import PredictOptions


def check_frame(predictor, image, name: str = "image") -> np.ndarray:
    """The checks RasterSource makes of a file, made of an array: (H, W, channels) with
    integers of the bundle's pixel type, or floats."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be a numpy array (H, W, C), got {type(image).__name__}")
    c = predictor.channels
    if image.ndim == 2 and c == 1:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[0] < 1 or image.shape[1] < 1 or image.shape[2] != c:
        raise ValueError(f"{name} must be (H, W, {c}) for this model ({c} channel(s)), got shape "
                         f"{tuple(image.shape)}")
    want = np.dtype(predictor.bundle.pixel_dtype)
    if image.dtype.kind in "ui" and image.dtype != want:
        raise ValueError(f"{name} holds {image.dtype} pixels, but the model takes {want} pixels (meta.json "
                         f"input.pixel_dtype {want.name!r})")
    if image.dtype.kind not in "uif":
        raise ValueError(f"{name} holds {image.dtype} pixels; expected integers or floats")
    return image


def predict_array(predictor, image: np.ndarray, opts: PredictOptions | None = None, *, valid=None,
                  nodata=None, name: str = "image") -> np.ndarray:
    """(H, W, C) pixels -> (H, W) class map (uint8; uint16 beyond 255 classes), 255 (65535)
    where there is no data, by the tiles, TTA and blending of `effseg predict` (opts: its
    tile, overlap, batch, tta and blend; the raster-file options do not apply).
    nodata: the value whose pixels are nodata (default: the bundle's input.nodata);
    valid: an optional (H, W) bool mask, False = nodata."""
    opts = replace(opts or PredictOptions(), progress=False)
    opts.check()
    image = check_frame(predictor, image, name)
    h, w = image.shape[:2]
    if valid is not None:
        if np.shape(valid) != (h, w):
            raise ValueError(f"valid must be an (H, W) = {(h, w)} mask, got shape {np.shape(valid)}")
        valid = np.asarray(valid, bool)
    labels, _ = tiled.predict_array(predictor, image, valid=valid, nodata=nodata, options=opts.tiling())
    return labels
