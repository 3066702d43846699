"""TrainConfig: every choice of a training run, checked before any data is read."""
from __future__ import annotations

from dataclasses import asdict, dataclass

LOSSES = ("ce", "ce+dice", "ce+distance", "ce+boundary")
KD_KINDS = ("logit", "cwd", "boundary")
# The data layer calls the generic layout "folder"; the CLI also accepts "generic".
FORMAT_ALIASES = {"generic": "folder"}


@dataclass
class TrainConfig:
    model: str
    data: str
    out: str
    format: str = "folder"
    epochs: int | None = None
    max_time: float | None = None
    loss: str = "ce"
    crop: int | None = None
    batch: int = 8
    lr: float = 6e-4
    weight_decay: float = 0.01
    amp: bool = False
    resume: str | None = None
    num_classes: int | None = None
    seed: int = 0
    workers: int = 0
    device: str = "auto"
    sync_bn: bool = False
    val_split: str = "val"
    teacher: str | None = None
    kd: str | None = None
    kd_weight: float = 1.0
    tau: float = 1.0
    kd_band: float = 3.0
    kd_edge_weight: float = 1.0
    kd_body_weight: float = 1.0
    teacher_compile: bool = False
    progress: bool = True
    # Stop this invocation after N epochs while the LR schedule still spans --epochs:
    # chunked runs (preemptible jobs), and how the resume test interrupts a run.
    stop_after: int | None = None

    def __post_init__(self):
        self.format = FORMAT_ALIASES.get(self.format, self.format)

    def check(self) -> TrainConfig:
        from ..data import get_format

        get_format(self.format)
        if self.loss not in LOSSES:
            raise ValueError(f"--loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.epochs is None and self.max_time is None:
            self.epochs = 10
        if self.epochs is not None and (not isinstance(self.epochs, int) or self.epochs < 1):
            raise ValueError(f"--epochs must be a positive int, got {self.epochs!r}")
        if self.max_time is not None and not self.max_time > 0:
            raise ValueError(f"--max-time must be a positive number of seconds, got {self.max_time!r}")
        for name, v, lo in (("--batch", self.batch, 1), ("--workers", self.workers, 0)):
            if not isinstance(v, int) or v < lo:
                raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
        if self.crop is not None and (not isinstance(self.crop, int) or self.crop < 8):
            raise ValueError(f"--crop must be an int >= 8 (pixels), got {self.crop!r}")
        if self.stop_after is not None and (not isinstance(self.stop_after, int) or self.stop_after < 1):
            raise ValueError(f"--stop-after must be a positive int (epochs), got {self.stop_after!r}")
        if not self.lr > 0:
            raise ValueError(f"--lr must be positive, got {self.lr!r}")
        if self.num_classes is not None and (not isinstance(self.num_classes, int) or self.num_classes < 1):
            raise ValueError(f"--num-classes must be a positive int, got {self.num_classes!r}")
        if (self.teacher is None) != (self.kd is None):
            raise ValueError("--teacher and --kd go together: --teacher RUN_T/best.ckpt --kd logit|cwd|boundary")
        if self.kd is not None and self.kd not in KD_KINDS:
            raise ValueError(f"--kd must be one of {', '.join(KD_KINDS)}, got {self.kd!r}")
        if not self.kd_weight >= 0:
            raise ValueError(f"--kd-weight must be >= 0, got {self.kd_weight!r}")
        for name, v in (("--kd-edge-weight", self.kd_edge_weight), ("--kd-body-weight", self.kd_body_weight)):
            if not v >= 0:
                raise ValueError(f"{name} must be >= 0, got {v!r}")
        if not self.tau > 0:
            raise ValueError(f"--tau must be positive, got {self.tau!r}")
        return self

    def to_dict(self) -> dict:
        return asdict(self)
