"""The torch-free runtime: loads an effseg bundle and runs it with numpy + onnxruntime
(or TensorRT). Nothing here may import torch: it is what runs on the edge device."""
from .images import IMAGE_EXTENSIONS, list_images, normalize, read_image

__all__ = ["IMAGE_EXTENSIONS", "list_images", "normalize", "read_image"]
