"""The forms calibration (and validation) data may take, turned into model-ready batches.

Accepted: a folder of images or an image path, a list of image paths, a numpy array
(N, C, H, W) already preprocessed, or an iterable (a DataLoader, a generator, a list)
yielding arrays or torch tensors (N, C, H, W) / (C, H, W), or (x, y) pairs whose y is
kept as labels. Torch is never imported: a tensor is recognised by its `.numpy()`.

Images are read with effseg.runtime.images.read_image and fitted to the model's static
input H x W by a center crop, so the pixels keep the ground sampling distance they
have when a large scene is tiled at inference; an image smaller than H x W in either
side is first scaled up (bilinear, aspect kept) just enough to cover it. Then
normalize(mean, std). With a dynamic H or W, images are fed at their own size, one per
batch.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..runtime.images import list_images, normalize, read_image

# Batch size used where the model's batch dimension is dynamic.
DYNAMIC_BATCH = 8


@dataclass
class InputSpec:
    """The model's single input: name and the static dims (None where dynamic)."""
    name: str
    batch: int | None
    channels: int | None
    height: int | None
    width: int | None


def _is_path(x) -> bool:
    return isinstance(x, (str, Path))


def is_reiterable(data) -> bool:
    """Whether a second pass over `data` sees the same items (false for generators)."""
    if _is_path(data) or isinstance(data, (np.ndarray, list, tuple)):
        return True
    try:
        return iter(data) is not data
    except TypeError:
        return False


def size_hint(data, max_images: int | None = None) -> int | None:
    """Number of samples when it is known without consuming `data` (for progress bars)."""
    n = None
    if _is_path(data):
        try:
            n = len(list_images(data))
        except OSError:
            n = None
    elif isinstance(data, np.ndarray):
        n = len(data) if data.ndim == 4 else None
    elif isinstance(data, (list, tuple)) and data and all(_is_path(p) for p in data):
        n = len(data)
    if n is not None and max_images is not None:
        n = min(n, max_images)
    return n


def resize_bilinear(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W, C) -> (height, width, C) float32, bilinear with half-pixel centres."""
    def taps(n_in, n_out):
        c = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
        lo = np.floor(c).astype(np.int64)
        return lo, np.minimum(lo + 1, n_in - 1), (c - lo).astype(np.float32)

    img = img.astype(np.float32)
    y0, y1, fy = taps(img.shape[0], height)
    x0, x1, fx = taps(img.shape[1], width)
    rows = img[y0] * (1 - fy)[:, None, None] + img[y1] * fy[:, None, None]
    return rows[:, x0] * (1 - fx)[None, :, None] + rows[:, x1] * fx[None, :, None]


def fit_image(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Center crop of (H, W, C) to (height, width), scaling up first if it is smaller."""
    ih, iw = img.shape[:2]
    if ih < height or iw < width:
        s = max(height / ih, width / iw)
        ih, iw = max(height, int(np.ceil(ih * s))), max(width, int(np.ceil(iw * s)))
        img = resize_bilinear(img, ih, iw)
    top, left = (ih - height) // 2, (iw - width) // 2
    return img[top:top + height, left:left + width]


def _to_numpy(x, name: str) -> np.ndarray:
    if hasattr(x, "numpy") and not isinstance(x, np.ndarray):
        if hasattr(x, "detach"):
            x = x.detach()
        if hasattr(x, "cpu"):
            x = x.cpu()
        x = x.numpy()
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must yield numpy arrays or tensors (N, C, H, W), got {type(x).__name__}")
    return x


def _check_batch(x: np.ndarray, spec: InputSpec, name: str) -> np.ndarray:
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise ValueError(f"{name} must hold (N, C, H, W) batches; got shape {tuple(x.shape)}")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{name} must hold preprocessed float batches; got dtype {x.dtype} "
                        "(pass image files to have them read and normalised)")
    want = (spec.channels, spec.height, spec.width)
    if any(w is not None and w != g for w, g in zip(want, x.shape[1:])):
        shown = tuple("?" if w is None else w for w in want)
        raise ValueError(f"{name} batches must be (N, {', '.join(map(str, shown))}) for input "
                         f"{spec.name!r}; got {tuple(x.shape)}")
    return np.ascontiguousarray(x, dtype=np.float32)


def _image_chunks(paths, spec: InputSpec, mean, std, batch: int):
    channels = spec.channels or 3
    fixed = spec.height is not None and spec.width is not None
    step = batch if fixed else 1
    for i in range(0, len(paths), step):
        imgs = []
        for p in paths[i:i + step]:
            img = read_image(p, channels=channels)
            if fixed:
                img = fit_image(img, spec.height, spec.width)
            imgs.append(normalize(img, mean, std))
        yield np.stack(imgs), None


def _chunks(data, spec: InputSpec, mean, std, batch: int, name: str) -> Iterator:
    """(x, y or None) chunks of any size, validated."""
    if _is_path(data):
        yield from _image_chunks(list_images(data), spec, mean, std, batch)
        return
    if isinstance(data, (list, tuple)) and data and all(_is_path(p) for p in data):
        missing = [str(p) for p in data if not Path(p).is_file()]
        if missing:
            raise FileNotFoundError(f"{name}: no such image file(s): {missing[:3]}")
        yield from _image_chunks(list(data), spec, mean, std, batch)
        return
    if isinstance(data, np.ndarray):
        x = _check_batch(data, spec, name)
        for i in range(0, len(x), batch):
            yield x[i:i + batch], None
        return
    if not isinstance(data, Iterable):
        raise TypeError(f"{name} must be an image folder or path, a list of image paths, an (N, C, H, W) "
                        f"array or an iterable of batches; got {type(data).__name__}")
    for item in data:
        y = None
        if isinstance(item, (tuple, list)):
            if not item:
                raise ValueError(f"{name} yielded an empty tuple")
            item, y = item[0], (item[1] if len(item) > 1 else None)
        x = _check_batch(_to_numpy(item, name), spec, name)
        if y is not None:
            y = _to_numpy(y, name)
        yield x, y


def batches(data, spec: InputSpec, *, mean, std, max_images: int | None = None,
            name: str = "calibration") -> Iterator[tuple[np.ndarray, np.ndarray | None, int]]:
    """(x, y, n): batches the model accepts; n rows of x are real data.

    With a static batch size the chunks are regrouped to exactly that size and the last
    one is padded by repeating its rows (n says how many are real). Raises ValueError
    naming `name` when there is no data.
    """
    if data is None:
        raise ValueError(f"{name} is required (image folder, image paths, array or loader)")
    if max_images is not None and max_images < 1:
        raise ValueError(f"max_images must be a positive integer or None, got {max_images}")
    batch = spec.batch or DYNAMIC_BATCH
    seen = 0
    xs, ys, held = [], [], 0

    def flush(xs, ys):
        x = np.concatenate(xs)
        y = None if any(v is None for v in ys) else np.concatenate(ys)
        n = len(x)
        if spec.batch is not None and n < spec.batch:
            pad = np.resize(np.arange(n), spec.batch)
            x = x[pad]
            y = None if y is None else y[pad]
        return x, y, n

    for x, y in _chunks(data, spec, mean, std, batch, name):
        if max_images is not None:
            x = x[:max_images - seen]
            y = None if y is None else y[:len(x)]
        if len(x) == 0:
            if max_images is not None and seen >= max_images:
                break
            continue
        seen += len(x)
        if spec.batch is None:
            yield x, y, len(x)
        else:
            xs.append(x)
            ys.append(y)
            held += len(x)
            while held >= spec.batch:
                x_all = np.concatenate(xs)
                y_all = None if any(v is None for v in ys) else np.concatenate(ys)
                yield x_all[:spec.batch], None if y_all is None else y_all[:spec.batch], spec.batch
                xs, ys = [x_all[spec.batch:]], [None if y_all is None else y_all[spec.batch:]]
                held -= spec.batch
        if max_images is not None and seen >= max_images:
            break
    if held:
        yield flush(xs, ys)
    if seen == 0:
        raise ValueError(f"{name} holds no samples")
