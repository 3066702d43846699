"""From native pixels to model input, and which pixels are nodata.

A pixel is nodata when any band is NaN or infinite (after input.scale, in float32),
when all its bands equal the nodata value (the file's, else the bundle's input.nodata),
or when a declared alpha band is 0 there. Nodata pixels enter the model as the band
mean (0 after normalisation), so they do not drag their neighbours' answers, and leave it
as the nodata label: no class is claimed where there was nothing to see.
"""
from __future__ import annotations

import numpy as np

NONFINITE = ("nodata", "error")
# Rows per pass when scanning a whole image for nodata: bounds the temporaries.
_SCAN_ROWS = 256


class PixelPrep:
    def __init__(self, mean, std, scale: float, nonfinite: str):
        if nonfinite not in NONFINITE:
            raise ValueError(f"nonfinite must be one of {', '.join(NONFINITE)}, got {nonfinite!r}")
        self.mean = np.asarray(mean, np.float32)
        self.std = np.asarray(std, np.float32)
        self.scale = scale
        self.nonfinite = nonfinite

    def _float(self, block: np.ndarray) -> np.ndarray:
        # A float64 pixel beyond float32's range becomes Inf, i.e. nodata: no warning needed.
        with np.errstate(over="ignore", invalid="ignore"):
            x = block.astype(np.float32)
            if self.scale != 1.0:
                x *= np.float32(self.scale)
        return x

    def nodata_mask(self, image: np.ndarray, valid: np.ndarray | None, nodata) -> np.ndarray | None:
        """(H, W) bool, True at nodata pixels; None when there are none. nonfinite='error'
        raises at the first non-finite pixel instead, before any model run."""
        h = image.shape[0]
        can_be_nonfinite = image.dtype.kind == "f"
        if not can_be_nonfinite and nodata is None and valid is None:
            return None
        mask = np.zeros(image.shape[:2], bool)
        for r0 in range(0, h, _SCAN_ROWS):
            block = image[r0:r0 + _SCAN_ROWS]
            m = mask[r0:r0 + _SCAN_ROWS]
            if can_be_nonfinite:
                bad = ~np.isfinite(self._float(block)).all(axis=-1)
                if bad.any() and self.nonfinite == "error":
                    r, c = np.argwhere(bad)[0]
                    raise ValueError(f"image has {int(bad.sum())} or more non-finite (NaN/Inf) pixels, the first "
                                     f"at row {r0 + int(r)}, column {int(c)}; nonfinite='error' (--nonfinite error) "
                                     "refuses them: use --nonfinite nodata to mark them nodata instead")
                m |= bad
            if nodata is not None:
                m |= (block == nodata).all(axis=-1)
            if valid is not None:
                m |= ~np.asarray(valid[r0:r0 + _SCAN_ROWS], bool)
        return mask if mask.any() else None

    def __call__(self, block: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """(h, w, C) native pixels -> (C, h, w) float32 model input; pixels under mask -> 0."""
        with np.errstate(invalid="ignore"):
            x = (self._float(block) - self.mean) / self.std
        if mask is not None:
            x[mask] = 0.0
        return np.ascontiguousarray(np.transpose(x, (2, 0, 1)))
