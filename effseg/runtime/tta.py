"""Test-time augmentation: the model sees each tile under a few flips/rotations, each
answer is turned back and the logits are averaged (labels are one-hot votes)."""
from __future__ import annotations

import numpy as np

TTA = ("none", "flip", "d4")


def transforms(tta: str, square: bool) -> list[tuple[int, bool]]:
    """(quarter turns k, flip left-right first) pairs. flip: identity, left-right and
    up-down (3 passes); d4: the 8 symmetries of the square (rotations need square tiles)."""
    if tta not in TTA:
        raise ValueError(f"--tta must be one of {', '.join(TTA)}, got {tta!r}")
    if tta == "none":
        return [(0, False)]
    if tta == "flip":
        return [(0, False), (0, True), (2, True)]  # rot180 of a left-right flip is the up-down flip
    if not square:
        raise ValueError("--tta d4 rotates tiles by 90 degrees, which needs square tiles; this model's tiles are "
                         "not square: use --tta flip")
    return [(k, f) for f in (False, True) for k in range(4)]


def forward(x: np.ndarray, k: int, flip: bool) -> np.ndarray:
    """(..., h, w) -> the transformed array (flip left-right, then k quarter turns)."""
    if flip:
        x = x[..., ::-1]
    return np.rot90(x, k, axes=(-2, -1))


def inverse(y: np.ndarray, k: int, flip: bool) -> np.ndarray:
    y = np.rot90(y, -k, axes=(-2, -1))
    return y[..., ::-1] if flip else y


def run_tta(run, x: np.ndarray, tta: str, classes: int, labels: bool) -> np.ndarray:
    """(N, C, h, w) -> (N, K, h, w) float32 logits averaged over the TTA transforms.

    run: the batch model ((N, C, h, w) -> logits or labels); labels=True turns its
    (N, h, w) labels into one-hot votes, so label models blend and average too."""
    ts = transforms(tta, x.shape[-1] == x.shape[-2])
    acc = None
    for k, f in ts:
        out = np.asarray(run(np.ascontiguousarray(forward(x, k, f))))
        if labels:
            out = (out[:, None] == np.arange(classes)[None, :, None, None]).astype(np.float32)
        out = inverse(out.astype(np.float32, copy=False), k, f)
        acc = np.array(out, np.float32) if acc is None else acc + out
    if len(ts) > 1:
        acc /= np.float32(len(ts))
    return acc
