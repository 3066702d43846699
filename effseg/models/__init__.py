"""The model zoo: lightweight remote-sensing segmentation nets on effseg's ops.

    effseg.list_models()                          names
    effseg.create_model("unetformer", 6)          a model with seeded initial weights
    effseg.models.load_checkpoint(model, "x.ckpt")  GeoSeg / Lightning / bare weights
"""
from .base import SegmentationModel
from .checkpoint import LoadResult, load_checkpoint
from .registry import ModelInfo, count_parameters, create_model, list_models, model_info

# isort: split
# Model modules register themselves on import (one line each, which also exports the class).
from .a2fpn import A2FPN
from .abcnet import ABCNet
from .banet import BANet
from .bisenetv2 import BiSeNetV2
from .cmunet import CMUNet, CMUNetTiny
from .manet import MANet
from .pyramidmamba import PyramidMamba
from .unetformer import UNetFormer
from .unetformer_dw import UNetFormerDW

__all__ = ["A2FPN", "ABCNet", "BANet", "BiSeNetV2", "CMUNet", "CMUNetTiny", "LoadResult",
           "MANet", "ModelInfo", "PyramidMamba", "SegmentationModel", "UNetFormer",
           "UNetFormerDW", "count_parameters", "create_model", "list_models", "load_checkpoint",
           "model_info"]
