"""The torch-free runtime: loads an effseg bundle and runs it with numpy + onnxruntime
(or TensorRT). Nothing here may import torch: it is what runs on the edge device."""
from .bundle import Bundle, BundleError, load_bundle
from .images import IMAGE_EXTENSIONS, list_images, normalize, read_image
from .predictor import Predictor
from .tensorrt_runner import TensorRTRunner, tensorrt_version

__all__ = ["IMAGE_EXTENSIONS", "Bundle", "BundleError", "Predictor", "TensorRTRunner", "list_images", "load_bundle",
           "normalize", "read_image", "tensorrt_version"]
