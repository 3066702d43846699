"""Training on real data: `effseg train` and `effseg evaluate`.

- config.py:     TrainConfig (every option of a run, checked up front)
- loop.py:       train(): the loop, single process or DDP under torchrun
- ddp.py:        torch.distributed setup from torchrun's environment
- objective.py:  --loss names, auxiliary heads, the distillation teacher
- checkpoint.py: GeoSeg/Lightning-form checkpoints with effseg metadata and resume state
- evaluate.py:   scores on whole images through the tiled inference path (checkpoint or bundle)
- records.py, curves.py: RUN/metrics.csv, metrics.json, curves.png
"""
from .config import KD_KINDS, LOSSES, TrainConfig

try:
    import torch  # noqa: F401
except ImportError:  # the torch-free CLI (effseg run/predict) still builds its parser from config.py
    pass
else:
    from .evaluate import evaluate
    from .loop import train

__all__ = ["KD_KINDS", "LOSSES", "TrainConfig", "evaluate", "train"]
