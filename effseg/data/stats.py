"""Per-band statistics computed from the training data (nodata excluded) and the
normalisation they drive. The stats are a plain dict so they can travel in a checkpoint
and a deployment bundle: nothing here assumes 8-bit data or ImageNet statistics."""
from __future__ import annotations

import numpy as np


def compute_band_stats(dataset, max_items: int | None = None) -> dict:
    """{"mean": [...], "std": [...], "pixels": n, "bands": C} over the valid pixels of
    `dataset` (anything with __len__ and raw(i) -> {"image": (H, W, C), "valid": (H, W)},
    e.g. SegFolder or GeoWindows). max_items caps how many items are read (the first ones)."""
    if not hasattr(dataset, "raw"):
        raise TypeError(f"dataset must have raw(i) (SegFolder, GeoWindows), got {type(dataset).__name__}")
    n_items = len(dataset) if max_items is None else min(len(dataset), int(max_items))
    count, mean, m2 = 0, None, None
    for i in range(n_items):
        item = dataset.raw(i)
        x = item["image"][item["valid"]].astype(np.float64)  # (n, C)
        if mean is None:
            mean = np.zeros(x.shape[-1])
            m2 = np.zeros(x.shape[-1])
        elif x.shape[-1] != mean.size:
            raise ValueError(f"item {i} has {x.shape[-1]} bands, earlier items {mean.size}; expected one band count")
        if x.shape[0] == 0:
            continue
        # Chan et al.'s pairwise merge: one pass, and stable for large uint16/float values
        # where sum-of-squares would cancel.
        n_b = x.shape[0]
        mean_b = x.mean(axis=0)
        m2_b = ((x - mean_b) ** 2).sum(axis=0)
        delta = mean_b - mean
        total = count + n_b
        mean = mean + delta * n_b / total
        m2 = m2 + m2_b + delta ** 2 * count * n_b / total
        count = total
    if count == 0:
        raise ValueError(f"no valid pixels in the {n_items} item(s) read: every pixel is nodata, "
                         "so band statistics cannot be computed; pass stats= explicitly")
    std = np.sqrt(m2 / count)
    # A constant band (std 0) would divide by zero: it carries no information, scale 1 keeps it at 0.
    std = np.where(std > 0, std, 1.0)
    return {"mean": [float(v) for v in mean], "std": [float(v) for v in std], "pixels": int(count),
            "bands": int(mean.size)}


def check_stats(stats, bands: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(stats, dict) or "mean" not in stats or "std" not in stats:
        raise TypeError(f"stats for {where} must be a dict with 'mean' and 'std' lists "
                        f"(as compute_band_stats returns), got {type(stats).__name__}")
    mean = np.asarray(stats["mean"], dtype=np.float64).reshape(-1)
    std = np.asarray(stats["std"], dtype=np.float64).reshape(-1)
    if mean.size != bands or std.size != bands:
        raise ValueError(f"stats for {where} have {mean.size} means and {std.size} stds; "
                         f"expected {bands} (one per band)")
    if not np.all(std > 0) or not np.all(np.isfinite(mean)):
        raise ValueError(f"stats for {where}: std must be positive and mean finite, got {stats}")
    return mean, std


def normalize(image: np.ndarray, valid: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(H, W, C) raw -> (C, H, W) float32 (x - mean) / std, with invalid pixels set to 0 (the
    band mean) so NaN/Inf or a -99999 nodata value never reaches the net."""
    x = (image.astype(np.float64) - mean) / std
    x[~valid] = 0.0
    return np.ascontiguousarray(np.moveaxis(x.astype(np.float32), -1, 0))


def to_sample(item: dict, index: int, stats, transform, where: str):
    """One raw item (image (H, W, C), mask, valid) as the (image (C, H, W) float32, mask
    int64) pair a dataset returns: normalised with `stats`, then `transform`ed."""
    import torch

    mean, std = check_stats(stats, item["image"].shape[-1], where)
    sample = {"image": normalize(item["image"], item["valid"], mean, std), "mask": item["mask"],
              "valid": item["valid"], "index": index}
    if transform is not None:
        sample = transform(sample)
    return (torch.from_numpy(np.ascontiguousarray(sample["image"], dtype=np.float32)),
            torch.from_numpy(np.ascontiguousarray(sample["mask"], dtype=np.int64)))
