"""Tiny datasets in the generic layout for tests/train: 32x32 PNG tiles, 3 classes."""
from pathlib import Path

import numpy as np
from PIL import Image

TINY_NET = "train_nets:two_conv"


def write_tile(root: Path, split: str, stem: str, rng, size=(32, 32), classes: int = 3, ignore: bool = False):
    h, w = size
    mask = np.zeros((h, w), np.uint8)
    # Blocks of classes whose colour the image carries (plus noise): learnable by 2 convs.
    cy, cx = rng.integers(8, h - 8), rng.integers(8, w - 8)
    mask[:cy, cx:] = 1 % classes
    mask[cy:, :cx] = 2 % classes
    if ignore:
        mask[:3, :3] = 255
    colours = np.array([[40, 90, 30], [200, 60, 60], [60, 60, 200]], np.float64)
    img = colours[np.minimum(mask, 2)] + rng.normal(0, 20, (h, w, 3))
    img = np.clip(img, 0, 255).astype(np.uint8)
    (root / split / "images").mkdir(parents=True, exist_ok=True)
    (root / split / "masks").mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(root / split / "images" / f"{stem}.png")
    Image.fromarray(mask).save(root / split / "masks" / f"{stem}.png")


def make_dataset(root: Path, n_train: int = 4, n_val: int = 2, seed: int = 0, val_size=(32, 32)) -> Path:
    rng = np.random.default_rng(seed)
    for i in range(n_train):
        write_tile(root, "train", f"t{i}", rng, ignore=i == 0)
    for i in range(n_val):
        write_tile(root, "val", f"v{i}", rng, size=val_size)
    return root

