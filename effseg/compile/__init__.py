"""effseg.compile: turn an nn.Module into a faster inference-only equivalent.

    cm = effseg.compile(model, input_shape=(1, 3, 512, 512))
    y = cm(x); cm.report()
"""
from .._parity import ParityError, check_parity, parity_figures
from .api import BACKEND_NAMES, CompiledModel, compile
from .autotune import Tuner

__all__ = ["BACKEND_NAMES", "CompiledModel", "ParityError", "Tuner", "check_parity", "compile",
           "parity_figures"]
