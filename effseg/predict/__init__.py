"""Georeferenced huge-image inference (`effseg predict`, and `effseg run`, its alias with
PNG outputs): windowed rasterio reading and writing around the runtime's one tile engine
(effseg.runtime.tiled: tiles blended with smooth weights, a reader / model / writer
pipeline); video files, cameras and streams frame by frame through the same tiles
(effseg.predict.video).

Torch-free when the model is a bundle: it imports effseg.runtime, numpy and rasterio
(OpenCV only when a video is opened)."""
from .arrays import predict_array
from .blend import RowBlender, axis_weights, ramp
from .pipeline import FORMATS, PredictOptions, PredictRun, RasterResult, predict_files, predict_image, predict_raster
from .video import VideoOptions, VideoResult, predict_video, predict_videos

__all__ = ["FORMATS", "PredictOptions", "PredictRun", "RasterResult", "RowBlender", "VideoOptions", "VideoResult",
           "axis_weights", "predict_array", "predict_files", "predict_image", "predict_raster", "predict_video",
           "predict_videos", "ramp"]
