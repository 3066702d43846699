"""Seeded, reproducible augmentation applied jointly to image and mask: flips, rot90,
scale-then-crop (image bilinear, mask nearest), photometric jitter on valid image pixels
only. Works on the sample dicts SegFolder and GeoWindows pass to their transform."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .formats import IGNORE


class Augment:
    """A transform for SegFolder / GeoWindows: sample dict in, sample dict out.

    The random draws of a sample depend only on (seed, epoch, sample index), so a run
    is reproducible whatever the DataLoader's worker count or order; call set_epoch(e)
    each epoch for fresh draws (with persistent workers, set it before they start).
    crop: output side (pads with mask 255 / invalid when the scaled image is smaller).
    scale: (lo, hi) range of a random resize before the crop. brightness / contrast /
    noise are in normalised (per-band std) units and touch only valid pixels.
    """

    def __init__(self, flip: bool = True, rot90: bool = True, scale=None, crop: int | None = None,
                 brightness: float = 0.0, contrast: float = 0.0, noise: float = 0.0, seed: int = 0):
        if scale is not None:
            if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
                raise ValueError(f"scale must be (lo, hi) with 0 < lo <= hi, got {scale!r}")
        if crop is not None and (not isinstance(crop, int) or crop < 1):
            raise ValueError(f"crop must be a positive int (the output side), got {crop!r}")
        for name, v in (("brightness", brightness), ("contrast", contrast), ("noise", noise)):
            if v < 0:
                raise ValueError(f"{name} must be >= 0, got {v}")
        if contrast >= 1:
            raise ValueError(f"contrast must be < 1 (a factor in [1 - contrast, 1 + contrast]), got {contrast}")
        self.flip, self.rot90, self.scale, self.crop = flip, rot90, scale, crop
        self.brightness, self.contrast, self.noise = brightness, contrast, noise
        self.seed, self.epoch = int(seed), 0
        self._calls = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __call__(self, sample: dict) -> dict:
        index = sample.get("index")
        if index is None:  # used outside a dataset: a sequence of draws from the seed
            index, self._calls = self._calls, self._calls + 1
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        image = np.asarray(sample["image"], dtype=np.float32)
        mask = np.asarray(sample["mask"], dtype=np.int64)
        valid = sample.get("valid")
        valid = np.ones(mask.shape, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
        if image.ndim != 3 or image.shape[1:] != mask.shape or valid.shape != mask.shape:
            raise ValueError(f"sample image must be (C, H, W) with mask and valid (H, W), got image "
                             f"{tuple(image.shape)}, mask {tuple(mask.shape)}, valid {tuple(valid.shape)}")
        if self.scale is not None:
            image, mask, valid = _resize(image, mask, valid, rng.uniform(*self.scale))
        if self.crop is not None:
            image, mask, valid = _crop(image, mask, valid, self.crop, rng)
        if self.flip:
            if rng.random() < 0.5:
                image, mask, valid = image[:, :, ::-1], mask[:, ::-1], valid[:, ::-1]
            if rng.random() < 0.5:
                image, mask, valid = image[:, ::-1], mask[::-1], valid[::-1]
        if self.rot90:
            k = int(rng.integers(4))
            image, mask, valid = np.rot90(image, k, (1, 2)), np.rot90(mask, k), np.rot90(valid, k)
        image = np.ascontiguousarray(image)
        if self.brightness or self.contrast or self.noise:
            c = rng.uniform(1 - self.contrast, 1 + self.contrast) if self.contrast else 1.0
            b = rng.uniform(-self.brightness, self.brightness, size=(image.shape[0], 1, 1)) if self.brightness else 0.0
            jittered = image * c + b
            if self.noise:
                jittered = jittered + rng.normal(0.0, self.noise, size=image.shape)
            image = np.where(valid[None], jittered, image).astype(np.float32)
        out = dict(sample)
        out.update(image=image, mask=np.ascontiguousarray(mask), valid=np.ascontiguousarray(valid))
        return out


def _resize(image, mask, valid, s: float):
    h, w = mask.shape
    size = (max(1, round(h * s)), max(1, round(w * s)))
    if size == (h, w):
        return image, mask, valid
    x = F.interpolate(torch.from_numpy(np.ascontiguousarray(image))[None], size=size, mode="bilinear",
                      align_corners=False)[0].numpy()
    # nearest-exact samples pixel centres the way bilinear with align_corners=False does,
    # so labels stay aligned with the image.
    m = F.interpolate(torch.from_numpy(np.ascontiguousarray(mask))[None, None].double(), size=size,
                      mode="nearest-exact")[0, 0].numpy().astype(np.int64)
    v = F.interpolate(torch.from_numpy(np.ascontiguousarray(valid))[None, None].double(), size=size,
                      mode="nearest-exact")[0, 0].numpy() > 0.5
    x[:, ~v] = 0.0
    return x, m, v


def _crop(image, mask, valid, side: int, rng):
    h, w = mask.shape
    ph, pw = max(0, side - h), max(0, side - w)
    if ph or pw:
        image = np.pad(image, ((0, 0), (0, ph), (0, pw)))
        mask = np.pad(mask, ((0, ph), (0, pw)), constant_values=IGNORE)
        valid = np.pad(valid, ((0, ph), (0, pw)), constant_values=False)
        h, w = mask.shape
    y0, x0 = int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))
    return (image[:, y0:y0 + side, x0:x0 + side], mask[y0:y0 + side, x0:x0 + side],
            valid[y0:y0 + side, x0:x0 + side])
