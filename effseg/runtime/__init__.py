"""The torch-free runtime: loads an effseg bundle and runs it with numpy + onnxruntime
(or TensorRT). Nothing here may import torch: it is what runs on the edge device."""
from .bundle import Bundle, BundleError, load_bundle
from .images import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, Raster, list_images, normalize, read_image, read_raster
from .predictor import Predictor
from .tensorrt_runner import TensorRTRunner, tensorrt_version
from .tiled import TileOptions

__all__ = ["DEFAULT_MAX_PIXELS", "IMAGE_EXTENSIONS", "Bundle", "BundleError", "Predictor", "Raster", "TensorRTRunner",
           "TileOptions", "list_images", "load_bundle", "normalize", "read_image", "read_raster",
           "tensorrt_version"]
