"""RUN/metrics.csv (one row per epoch) and RUN/metrics.json (the run, every epoch in full)."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

CSV_FIELDS = ("epoch", "train_loss", "lr", "miou", "f1", "oa", "boundary_iou", "images_per_s", "epoch_s",
              "distance_share")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_records(run: Path, header: dict, epochs: list[dict]) -> None:
    """Rewrites both files from the full epoch list, so a resumed run's files hold every
    epoch once."""
    rows = []
    for e in epochs:
        row = {k: e.get(k) for k in CSV_FIELDS}
        for i, v in enumerate(e.get("per_class_iou") or []):
            row[f"iou_{i}"] = v
        rows.append(row)
    fields = list(CSV_FIELDS) + [k for k in (rows[-1] if rows else {}) if k.startswith("iou_")]
    from io import StringIO

    buf = StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    _atomic_write(run / "metrics.csv", buf.getvalue())
    _atomic_write(run / "metrics.json", json.dumps({**header, "epochs": epochs}, indent=2) + "\n")
