"""Georeferenced huge-image inference (`effseg predict`): windowed rasterio reading and
writing, tiles blended with smooth weights, a reader / model / writer pipeline.

Torch-free when the model is a bundle: it imports effseg.runtime, numpy and rasterio."""
from .blend import RowBlender, axis_weights, ramp
from .pipeline import PredictOptions, PredictRun, RasterResult, predict_files, predict_raster

__all__ = ["PredictOptions", "PredictRun", "RasterResult", "RowBlender", "axis_weights", "predict_files",
           "predict_raster", "ramp"]
