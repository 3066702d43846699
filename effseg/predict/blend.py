"""The blending weights moved to effseg.runtime.blend (the one tile engine lives in the
runtime, under both `effseg run` and `effseg predict`); kept so imports keep working."""
from ..runtime.blend import RAMPS, RowBlender, axis_weights, ramp, weight_sum

__all__ = ["RAMPS", "RowBlender", "axis_weights", "ramp", "weight_sum"]
