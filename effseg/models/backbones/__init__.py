"""Encoders for the zoo (no timm/torchvision dependency; their parameter names)."""
from .resnet import ResNet, resnet18, resnet50

__all__ = ["ResNet", "resnet18", "resnet50"]
