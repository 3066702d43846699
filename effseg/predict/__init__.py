"""Georeferenced huge-image inference (`effseg predict`, and `effseg run`, its alias with
PNG outputs): windowed rasterio reading and writing around the runtime's one tile engine
(effseg.runtime.tiled: tiles blended with smooth weights, a reader / model / writer
pipeline).

Torch-free when the model is a bundle: it imports effseg.runtime, numpy and rasterio."""
from .blend import RowBlender, axis_weights, ramp
from .pipeline import FORMATS, PredictOptions, PredictRun, RasterResult, predict_files, predict_image, predict_raster

__all__ = ["FORMATS", "PredictOptions", "PredictRun", "RasterResult", "RowBlender", "axis_weights", "predict_files",
           "predict_image", "predict_raster", "ramp"]
