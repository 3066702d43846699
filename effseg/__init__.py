"""effseg: compiled kernels for lightweight remote-sensing segmentation networks."""
__version__ = "0.1.0"

from . import export, losses, metrics, nn, ops
from .info import backend_report

__all__ = ["__version__", "backend_report", "export", "losses", "metrics", "nn", "ops"]
