"""Small synthetic GeoTIFFs for the predict tests."""
from __future__ import annotations

import numpy as np

CRS = "EPSG:32616"


def transform(x0=500000.0, y0=4000000.0, res=0.5):
    from affine import Affine

    return Affine(res, 0.0, x0, 0.0, -res, y0)


def write_tif(path, bands: np.ndarray, *, nodata=None, crs=CRS, tiled=False, block=256, alpha=False, **kw):
    """bands: (B, H, W). tiled: a block layout of `block`; alpha: the last band is alpha."""
    import rasterio
    from rasterio.enums import ColorInterp

    b, h, w = bands.shape
    profile = dict(driver="GTiff", width=w, height=h, count=b, dtype=bands.dtype, crs=crs, transform=transform(),
                   nodata=nodata, **kw)
    if alpha:
        profile.update(photometric="RGB", alpha="YES")  # GTiff's ExtraSamples: the last band is alpha
    if tiled:
        profile.update(tiled=True, blockxsize=block, blockysize=block)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(bands)
    if alpha:
        with rasterio.open(path) as src:
            assert src.colorinterp[-1] == ColorInterp.alpha, src.colorinterp
    return path


def rgb(h, w, seed=0, dtype=np.uint8, bands=3, high=256):
    return np.random.default_rng(seed).integers(0, high, (bands, h, w)).astype(dtype)
