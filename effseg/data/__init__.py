"""Datasets: the generic folder layout and GeoSeg's (LoveDA, Potsdam, Vaihingen, UAVid),
per-band statistics and seeded augmentation."""
from .augment import Augment
from .folder import SegFolder, infer_bands, infer_num_classes, read_meta
from .formats import FORMATS, IGNORE, get_format
from .rasters import read_label, read_raster
from .stats import compute_band_stats, normalize

__all__ = ["Augment", "FORMATS", "IGNORE", "SegFolder", "compute_band_stats", "get_format", "infer_bands",
           "infer_num_classes", "normalize", "read_label", "read_raster", "read_meta"]
