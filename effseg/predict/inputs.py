"""INPUT arguments (files, folders, globs) -> the raster files to predict, and their
output names."""
from __future__ import annotations

import glob
from pathlib import Path

RASTER_EXTENSIONS = (".tif", ".tiff", ".vrt", ".png", ".jpg", ".jpeg")


def expand_inputs(args, extensions=RASTER_EXTENSIONS) -> list[Path]:
    """Each argument is a file (taken whatever its suffix: GDAL decides), a folder (its
    files with one of `extensions`, sorted, not recursive) or a glob ('**' recurses). An
    argument that names nothing is an error naming it; a file named twice is predicted once."""
    out: list[Path] = []
    for a in args:
        p = Path(a)
        if p.is_file():
            found = [p]
        elif p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in extensions)
            if not found:
                raise FileNotFoundError(f"INPUT folder {a!r} holds no rasters ({', '.join(extensions)})")
        elif glob.has_magic(str(a)):
            found = sorted(Path(f) for f in glob.glob(str(a), recursive=True) if Path(f).is_file())
            if not found:
                raise FileNotFoundError(f"INPUT glob {a!r} matches no files")
        else:
            raise FileNotFoundError(f"INPUT {a!r} is neither a file, a folder nor a glob that matches files")
        out += found
    seen, unique = set(), []
    for f in out:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


def output_name(path: Path) -> str:
    """DIR/<stem>.tif: a.tif -> a.tif, scene.vrt -> scene.tif."""
    return f"{path.stem}.tif"
