"""Encoders for the zoo (no timm/torchvision dependency; their parameter names)."""
from .resnet import ResNet, resnet18, resnet50
from .rest import ResT, rest_lite

__all__ = ["ResNet", "ResT", "resnet18", "resnet50", "rest_lite"]
