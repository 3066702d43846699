"""Scores of a model on whole images of any size, through the tiled path inference uses.

A checkpoint runs as a torch model through the runtime's one tile engine
(effseg.runtime.tiled: tiles of the checkpoint's tile size with the bundle's default
overlap, reflect-padded, logits blended with cosine ramps), which is what
effseg.runtime.Predictor does with the static-size bundle exported from it; a bundle runs
through Predictor.predict_logits itself. Training's
per-epoch validation is the checkpoint path, so `effseg evaluate RUN/best.ckpt` repeats
the best epoch's figures.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from ..data import SegFolder
from ..metrics import SegMetrics, boundary_iou
from ..runtime.blend import RowBlender
from ..runtime.tiled import ArraySource, run_tiles


def default_overlap(tile: int) -> int:
    """The overlap bundle_meta gives a bundle of this tile size."""
    return min(64, tile // 4)


def _nan_to_none(values):
    return [None if (v is None or (isinstance(v, float) and math.isnan(v))) else float(v) for v in values]


class Scores:
    """Streaming mIoU / per-class IoU / F1 / OA (confusion matrix) and Boundary IoU
    (intersections and unions of the boundary bands summed over images)."""

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.cm = SegMetrics(num_classes, device="cpu")
        self.inter = torch.zeros(num_classes, dtype=torch.int64)
        self.union = torch.zeros(num_classes, dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """pred, target: (H, W) integer labels on the CPU; target 255 is ignored."""
        pred, target = pred[None].long(), target[None].long()
        self.cm.update(pred, target)
        b = boundary_iou(pred, target, num_classes=self.num_classes)
        self.inter += b["intersection"]
        self.union += b["union"]

    def sync(self, dist) -> Scores:
        self.cm.matrix = dist.all_sum(self.cm._zeros("cpu"))
        self.inter = dist.all_sum(self.inter)
        self.union = dist.all_sum(self.union)
        return self

    def result(self, classes=None) -> dict:
        s = self.cm.compute()
        biou = torch.full((self.num_classes,), float("nan"), dtype=torch.float64)
        pos = self.union > 0
        biou[pos] = self.inter[pos].double() / self.union[pos].double()
        ok = ~torch.isnan(biou)
        out = {"miou": s["mIoU"], "per_class_iou": _nan_to_none(s["IoU"].tolist()), "f1": s["mF1"],
               "per_class_f1": _nan_to_none(s["F1"].tolist()), "oa": s["OA"],
               "boundary_iou": float(biou[ok].mean()) if bool(ok.any()) else float("nan"),
               "per_class_boundary_iou": _nan_to_none(biou.tolist())}
        for k in ("miou", "f1", "oa", "boundary_iou"):
            out[k] = None if math.isnan(out[k]) else out[k]
        if classes is not None:
            out["classes"] = list(classes)
        return out


@torch.no_grad()
def model_logits(model: torch.nn.Module, x: np.ndarray, tile: int, overlap: int, device,
                 classes: int) -> np.ndarray:
    """(C, H, W) normalised image -> (K, H, W) float32 logits over the tile plan."""
    def run(t: np.ndarray) -> np.ndarray:
        out = model(torch.from_numpy(np.ascontiguousarray(t)).to(device))
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out.float().cpu().numpy()

    _, h, w = x.shape
    blender = RowBlender(h, w, (tile, tile), min(overlap, tile // 2), classes)
    src = ArraySource(np.moveaxis(x, 0, -1))
    out = np.empty((classes, h, w), np.float32)

    def read(i, j):
        px, _ = src.read_tile(blender.ys[i], blender.xs[j], tile, tile)
        return np.ascontiguousarray(np.moveaxis(px, -1, 0)), None

    def emit(i):
        r0, r1 = blender.row_span(i)
        out[:, r0:r1] = blender.blended(i)

    run_tiles(blender, read, run, emit, classes=classes)
    return out


def score_model(model, dataset: SegFolder, tile: int, device, indices=None, progress: bool = False) -> Scores:
    """Scores of a torch model (put in eval mode here) on dataset items `indices` (all)."""
    model.eval()
    scores = Scores(dataset.num_classes)
    indices = range(len(dataset)) if indices is None else indices
    for i in _bar(indices, progress, "evaluate"):
        x, y = dataset[i]
        logits = model_logits(model, x.numpy(), tile, default_overlap(tile), device, dataset.num_classes)
        scores.update(torch.from_numpy(logits.argmax(axis=0)), y)
    return scores


def score_bundle(bundle_dir, dataset: SegFolder, progress: bool = False) -> Scores:
    from ..runtime.predictor import Predictor

    predictor = Predictor(bundle_dir, backend="onnxruntime")
    if predictor.bundle.num_classes != dataset.num_classes:
        raise ValueError(f"the bundle {str(bundle_dir)!r} predicts {predictor.bundle.num_classes} classes but the "
                         f"data has {dataset.num_classes}")
    scores = Scores(dataset.num_classes)
    for i in _bar(range(len(dataset)), progress, "evaluate"):
        item = dataset.raw(i)
        logits = predictor.predict_logits(item["image"], valid=item["valid"])
        # NaN marks nodata, whose target is 255 (ignored): any label will do there.
        pred = np.nan_to_num(logits, nan=0.0).argmax(axis=0)
        scores.update(torch.from_numpy(pred), torch.from_numpy(np.asarray(item["mask"], dtype=np.int64)))
    return scores


def _bar(it, progress: bool, desc: str):
    if not progress:
        return it
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return it
    return tqdm(it, desc=desc, leave=False)


def evaluate(model_path, data, split: str = "val", format: str | None = None, json_out=None,
             device: str = "auto", progress: bool = False) -> dict:
    """Scores of an `effseg train` checkpoint or an exported bundle folder on ROOT's split:
    {"miou", "per_class_iou", "f1" (mean F1), "per_class_f1", "oa", "boundary_iou",
    "per_class_boundary_iou", "classes", "images", "source"}; NaN (a class absent from
    prediction and target) is null. Writes it as JSON to json_out when given."""
    from .checkpoint import net_state, read_checkpoint
    from .config import FORMAT_ALIASES
    from .ddp import pick_device

    path = Path(model_path)
    if path.is_dir():
        from ..runtime.bundle import load_bundle

        meta = load_bundle(path).meta
        norm = meta["normalize"]
        fmt = FORMAT_ALIASES.get(format, format) or "folder"
        ds = SegFolder(data, split, fmt, stats={"mean": norm["mean"], "std": norm["std"]},
                       num_classes=meta["num_classes"])
        scores, source, classes = score_bundle(path, ds, progress), "bundle", meta.get("classes")
    elif path.is_file():
        ckpt = read_checkpoint(path)
        meta = ckpt["effseg"]
        fmt = FORMAT_ALIASES.get(format, format) or meta.get("format", "folder")
        ds = SegFolder(data, split, fmt, stats=meta["normalize"], num_classes=meta["num_classes"])
        from ..models.spec import build_model

        dev = pick_device(device)
        model = build_model(meta["architecture"], meta["num_classes"], meta["in_channels"])
        model.load_state_dict(net_state(ckpt))
        scores = score_model(model.to(dev), ds, int(meta["tile_size"]), dev, progress=progress)
        source, classes = "checkpoint", meta.get("classes")
    else:
        raise FileNotFoundError(f"CKPT|BUNDLE: {str(path)!r} is neither a checkpoint file nor a bundle folder")
    out = scores.result(classes)
    out.update(images=len(ds), split=split, source=source, path=str(path))
    if json_out is not None:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(out, indent=2) + "\n")
    return out
