"""effseg: compiled kernels for lightweight remote-sensing segmentation networks."""
__version__ = "0.1.0"

from . import export, ops
from .info import backend_report

__all__ = ["ops", "export", "backend_report", "__version__"]
