"""Where effseg keeps what it downloads or measures: $EFFSEG_CACHE, else ~/.cache/effseg.
Torch-free, so that the data samples and compile's autotune records share one rule."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("EFFSEG_CACHE") or Path.home() / ".cache" / "effseg")
