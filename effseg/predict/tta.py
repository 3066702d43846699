"""Test-time augmentation moved to effseg.runtime.tta (the one tile engine lives in the
runtime); kept so imports keep working."""
from ..runtime.tta import TTA, forward, inverse, run_tta, transforms

__all__ = ["TTA", "forward", "inverse", "run_tta", "transforms"]
