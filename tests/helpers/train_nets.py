"""Tiny nets for the training tests, named as `module:callable` (tests/helpers is on
sys.path, and on PYTHONPATH for the torchrun children)."""
from torch import nn


def two_conv(num_classes: int = 3, in_channels: int = 3) -> nn.Module:
    """No BatchNorm and no dropout: DDP on 2 processes gives the same gradients as one
    process on the same global batch, and no RNG is drawn during training."""
    return nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, num_classes, 3, padding=1))


def two_conv_bn(num_classes: int = 3, in_channels: int = 3) -> nn.Module:
    return nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, num_classes, 3, padding=1))
