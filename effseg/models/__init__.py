"""The model zoo: lightweight remote-sensing segmentation nets on effseg's ops.

    effseg.list_models()                          names
    effseg.create_model("unetformer", 6)          a model with seeded initial weights
    effseg.models.load_checkpoint(model, "x.ckpt")  GeoSeg / Lightning / bare weights
"""
from .base import SegmentationModel
from .checkpoint import LoadResult, load_checkpoint
from .registry import ModelInfo, count_parameters, create_model, list_models, model_info

# isort: split
# Model modules register themselves on import.
from .abcnet import ABCNet
from .banet import BANet

__all__ = ["ABCNet", "BANet", "LoadResult", "ModelInfo", "SegmentationModel",
           "count_parameters", "create_model", "list_models", "load_checkpoint", "model_info"]
