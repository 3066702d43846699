"""In-memory images (video frames, camera grabs) through the raster pipeline: the same
tiles, test-time augmentation, batching and blended overlaps as a GeoTIFF, so a frame
and the same pixels saved as a PNG get the same class map, bit for bit."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..runtime.tiling import reflect_index
from .blend import RowBlender
from .pipeline import PredictOptions, _run_stages, tile_geometry


class ArraySource:
    """An (H, W, C) array seen as the pipeline's reader sees a RasterSource."""

    def __init__(self, image: np.ndarray, valid: np.ndarray | None = None, nodata=None):
        self.image, self.valid, self.nodata = image, valid, nodata
        self.height, self.width = image.shape[:2]

    def read_tile(self, y: int, x: int, th: int, tw: int) -> tuple[np.ndarray, np.ndarray | None]:
        # Reflection past the bottom/right, as RasterSource.read_tile does: a tile that
        # sticks out must hold the same pixels whichever source it came from.
        ri = reflect_index(y, y + th, self.height)[:, None]
        ci = reflect_index(x, x + tw, self.width)[None, :]
        return self.image[ri, ci], None if self.valid is None else self.valid[ri, ci]


class ArraySink:
    """The class map the pipeline's writer fills row block by row block."""

    def __init__(self, h: int, w: int, dtype):
        self.labels = np.empty((h, w), dtype)

    def write_rows(self, r0: int, rows: np.ndarray) -> None:
        self.labels[r0:r0 + rows.shape[0]] = rows


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
    (th, tw), overlap = tile_geometry(predictor, opts.tile, opts.overlap)
    k = predictor.bundle.num_classes
    label_dtype = np.uint8 if k <= 255 else np.uint16
    nodata_label = 255 if k <= 255 else 65535
    blender = RowBlender(h, w, (th, tw), overlap, k, opts.blend)
    sink = ArraySink(h, w, label_dtype)
    labels_model = predictor.bundle.output["kind"] == "labels"
    _run_stages(predictor, ArraySource(image, valid, nodata), blender, sink, None, opts, nodata_label, label_dtype,
                labels_model, name)
    return sink.labels
