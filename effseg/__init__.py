"""effseg: compiled kernels for lightweight remote-sensing segmentation networks."""
__version__ = "0.1.0"

from . import export, losses, metrics, models, nn, ops
from .compile import ParityError, compile
from .info import backend_report
from .models import create_model, list_models

__all__ = ["ParityError", "__version__", "backend_report", "compile", "create_model", "export", "list_models", "losses",
           "metrics", "models", "nn", "ops"]
