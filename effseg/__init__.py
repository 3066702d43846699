"""effseg: compiled kernels for lightweight remote-sensing segmentation networks.

Where torch is installed, `import effseg` loads everything (and registers the custom ops
under torch.ops.effseg). Where it is not, as on an edge device that only runs exported
bundles, only the torch-free parts load: `effseg.runtime` needs numpy and onnxruntime
(or tensorrt).
"""
from ._version import __version__

try:
    import torch  # noqa: F401  (the eager imports below need it anyway)
except ImportError:
    HAS_TORCH = False
else:
    HAS_TORCH = True

if HAS_TORCH:
    from . import export, losses, metrics, models, nn, ops, runtime
    from .compile import ParityError, compile
    from .info import backend_report
    from .models import create_model, list_models

    __all__ = ["ParityError", "__version__", "backend_report", "compile", "create_model", "export", "list_models",
               "losses", "metrics", "models", "nn", "ops", "runtime"]
else:
    from . import runtime

    __all__ = ["__version__", "runtime"]
