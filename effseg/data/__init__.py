"""Datasets: the generic folder layout and GeoSeg's (LoveDA, Potsdam, Vaihingen, UAVid),
windows of large GeoTIFFs, per-band statistics, seeded augmentation, real sample data."""
from .augment import Augment
from .folder import SegFolder, infer_bands, infer_num_classes, read_meta
from .formats import FORMATS, IGNORE, get_format
from .rasters import read_label, read_raster
from .samples import SAMPLES, fetch_sample
from .stats import compute_band_stats, normalize
from .windows import GeoWindows

__all__ = ["Augment", "FORMATS", "GeoWindows", "IGNORE", "SAMPLES", "SegFolder", "compute_band_stats",
           "fetch_sample", "get_format", "infer_bands", "infer_num_classes", "normalize", "read_label",
           "read_meta", "read_raster"]
