"""nn.Modules built on effseg's ops."""
from .ss2d import SS2D

__all__ = ["SS2D"]
