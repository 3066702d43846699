"""Writers for the tiny fixtures the data tests lay out on disk."""
from pathlib import Path

import numpy as np
import pytest


def write_tif(path, array, nodata=None, transform=None, crs=None):
    """(H, W) or (C, H, W) array -> GeoTIFF."""
    import rasterio

    a = np.asarray(array)
    if a.ndim == 2:
        a = a[None]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    from affine import Affine

    geo = {"transform": transform or Affine(1, 0, 500000, 0, -1, 4000000), "crs": crs or "EPSG:32616"}
    with rasterio.open(path, "w", driver="GTiff", height=a.shape[1], width=a.shape[2], count=a.shape[0],
                       dtype=a.dtype, nodata=nodata, **geo) as dst:
        dst.write(a)
    return Path(path)


def write_png(path, array):
    from PIL import Image

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array)).save(path)
    return Path(path)


@pytest.fixture
def tif():
    pytest.importorskip("rasterio")
    return write_tif


@pytest.fixture
def png():
    return write_png
