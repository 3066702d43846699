"""RUN/curves.png: training loss and validation scores per epoch (needs matplotlib)."""
from __future__ import annotations

from pathlib import Path


def plot_curves(run: Path, epochs: list[dict]) -> str | None:
    """Writes RUN/curves.png; returns None on success, else why it was skipped."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        return f"curves.png skipped: matplotlib is not installed ({exc}); pip install matplotlib"
    x = [e["epoch"] for e in epochs]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(x, [e["train_loss"] for e in epochs], marker="o")
    a.set_xlabel("epoch")
    a.set_ylabel("training loss")
    for key, label in (("miou", "mIoU"), ("f1", "mF1"), ("oa", "OA"), ("boundary_iou", "Boundary IoU")):
        ys = [e.get(key) for e in epochs]
        b.plot(x, [float("nan") if y is None else y for y in ys], marker="o", label=label)
    b.set_xlabel("epoch")
    b.set_ylabel("validation")
    b.legend()
    fig.tight_layout()
    fig.savefig(Path(run) / "curves.png", dpi=80)
    plt.close(fig)
    return None
