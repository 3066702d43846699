"""Huge-image inference: rasters read window by window through the runtime's one tile
engine (effseg.runtime.tiled: a reader thread, the model on batches of tiles with
test-time augmentation, a writer thread blending row by row) into tiled GeoTIFFs
written one block row at a time, so memory does not grow with the raster's area; or,
with format "png" (`effseg run`), whole images in, label and colour PNGs out.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..runtime.blend import RowBlender
from ..runtime.bundle import BundleError
from ..runtime.images import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, check_max_pixels, read_raster
from ..runtime.tiled import (TILE_MULTIPLE, TileOptions, finished_labels, plan_tiles, predict_array, run_tiles,
                             tile_geometry, tile_reader)
from ..runtime.tiling import tile_starts
from .geotiff import ClassMapWriter, RasterSource, class_tags, gdal_env, replace, to_cog
from .inputs import RASTER_EXTENSIONS, expand_inputs, output_name
from .label_png import output_paths, write_label_pngs

__all__ = ["FORMATS", "TILE_MULTIPLE", "PredictOptions", "PredictRun", "RasterResult", "predict_files",
           "predict_image", "predict_raster", "tile_geometry"]
# tif: georeferenced class maps read and written window by window; png: `effseg run`'s
# <file name>_labels.png + _color.png from whole images in memory.
FORMATS = ("tif", "png")


@dataclass
class PredictOptions:
    """tile: tile side for dynamic-size bundles (default meta.json tile.size); overlap:
    pixels shared by neighbouring tiles (default tile.overlap, at most half a tile);
    batch: tiles per model call; tta: none | flip | d4; blend: cosine | linear ramps;
    bands (1-based) / replicate_grey: which raster bands feed the model; probs: also
    write <stem>_probs.tif; cog: write Cloud-Optimised GeoTIFFs; vector: also write
    polygons (geojson or gpkg), simplified at `simplify` pixels. format: tif (GeoTIFF
    class maps) or png (label + colour PNGs, whole images read into memory, refused past
    max_pixels; None: no limit)."""
    tile: int | None = None
    overlap: int | None = None
    batch: int = 4
    tta: str = "none"
    blend: str = "cosine"
    bands: object = None
    replicate_grey: bool = False
    probs: bool = False
    cog: bool = False
    vector: str | None = None
    simplify: float = 1.0
    progress: bool = True
    prefetch: int = 4
    format: str = "tif"
    max_pixels: int | None = DEFAULT_MAX_PIXELS

    def tiling(self) -> TileOptions:
        return TileOptions(tile=self.tile, overlap=self.overlap, batch=self.batch, tta=self.tta, blend=self.blend,
                           prefetch=self.prefetch)

    def check(self) -> None:
        self.tiling().check()
        if self.format not in FORMATS:
            raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.format == "png":
            asked = [f for f, on in (("--probs", self.probs), ("--cog", self.cog), ("--vector", self.vector)) if on]
            if asked:
                raise ValueError(f"{', '.join(asked)} write GeoTIFF / vector files: use --format tif")
        check_max_pixels(self.max_pixels)
        if self.vector not in (None, "geojson", "gpkg"):
            raise ValueError(f"--vector must be geojson or gpkg, got {self.vector!r}")
        if not isinstance(self.simplify, (int, float)) or isinstance(self.simplify, bool) or self.simplify < 0:
            raise ValueError(f"--simplify must be a number of pixels >= 0, got {self.simplify!r}")


@dataclass
class RasterResult:
    input: Path
    output: Path
    probs: Path | None
    vector: Path | None
    tiles: int
    seconds: float
    megapixels: float

    @property
    def mp_per_s(self) -> float:
        return self.megapixels / self.seconds if self.seconds > 0 else float("inf")


@dataclass
class PredictRun:
    results: list[RasterResult] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def _progress(total: int, name: str, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="tile", desc=name, file=sys.stderr, leave=False)


def label_format(predictor) -> tuple[np.dtype, int]:
    """(class-map dtype, its nodata label): uint8 / 255 up to 255 classes, else uint16 / 65535."""
    k = predictor.bundle.num_classes
    return (np.dtype(np.uint8), 255) if k <= 255 else (np.dtype(np.uint16), 65535)


def predict_raster(predictor, path, out_dir, opts: PredictOptions | None = None, *, fill=None) -> RasterResult:
    """Predict one raster into out_dir/<stem>.tif (and <stem>_probs.tif, <stem>.geojson
    when asked). The output appears only when complete (written under a temporary name).
    fill: what computes and writes the rows (default: this process's reader / model /
    writer threads; ray_run passes one that gathers strips from Ray workers)."""
    opts = opts or PredictOptions()
    opts.check()
    path, out = Path(path), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    k = predictor.bundle.num_classes
    labels_model = predictor.bundle.output["kind"] == "labels"
    if opts.probs and labels_model:
        raise ValueError("--probs needs a bundle whose model outputs logits; this one outputs labels "
                         "(output.kind 'labels')")
    label_dtype, nodata_label = label_format(predictor)
    final = out / output_name(path)
    probs_final = out / f"{path.stem}_probs.tif" if opts.probs else None
    t0 = time.perf_counter()
    with gdal_env():
        src = RasterSource(path, predictor.channels, predictor.bundle.pixel_dtype, bands=opts.bands,
                           replicate_grey=opts.replicate_grey)
        tmp = out / f".{final.name}.part"
        tmp_probs = out / f".{probs_final.name}.part" if probs_final else None
        writer = probs_writer = None
        try:
            h, w = src.height, src.width
            blender = raster_blender(predictor, src, opts)
            writer = ClassMapWriter(tmp, src, count=1, nodata=nodata_label, dtype=label_dtype,
                                    palette=predictor.bundle.palette if k <= 255 else None,
                                    tags=class_tags(predictor.bundle.classes))
            if probs_final:
                probs_writer = ClassMapWriter(
                    tmp_probs, src, count=k, nodata=None, tags=class_tags(predictor.bundle.classes),
                    band_tags=[{"class": c, "scale": "probability x 255"} for c in predictor.bundle.classes])
            run_rows = fill or fill_rows
            tiles = run_rows(predictor, src, blender, writer, probs_writer, opts, nodata_label, label_dtype,
                             labels_model, path.name)
            writer.close()
            writer = None
            if probs_writer:
                probs_writer.close()
                probs_writer = None
            if opts.cog:
                for t, f in ((tmp, final), (tmp_probs, probs_final)):
                    if t is not None:
                        cog_tmp = t.with_name(t.name + ".cog")
                        to_cog(t, cog_tmp, src.block_shape()[0])
                        t.unlink()
                        replace(cog_tmp, f)
            else:
                replace(tmp, final)
                if tmp_probs is not None:
                    replace(tmp_probs, probs_final)
        finally:
            for wr in (writer, probs_writer):
                if wr is not None:
                    wr.dst.close()
            src.close()
            for t in (tmp, tmp_probs):
                if t is not None and t.exists():
                    t.unlink()
                    cog = t.with_name(t.name + ".cog")
                    if cog.exists():
                        cog.unlink()
    vector_path = None
    if opts.vector:
        from .vector import write_vector

        vector_path = write_vector(final, out / f"{path.stem}.{opts.vector}", classes=predictor.bundle.classes,
                                   nodata=nodata_label, simplify=opts.simplify)
    return RasterResult(path, final, probs_final, vector_path, tiles, time.perf_counter() - t0, h * w / 1e6)


def raster_blender(predictor, src, opts: PredictOptions) -> RowBlender:
    """The tile grid and accumulator of a raster: predict_raster's, and each Ray strip's
    (ray_run), which must be the same for the strips to add up to the same file."""
    h, w = src.height, src.width
    return RowBlender(h, w, *plan_tiles(predictor, h, w, opts.tiling()), predictor.bundle.num_classes, opts.blend)


def fill_rows(predictor, src, blender, writer, probs_writer, opts, nodata_label, label_dtype, labels_model, name,
              *, rows: tuple[int, int] | None = None) -> int:
    """predict_raster's default fill: the tiles through the runtime's engine (run_tiles),
    each finished band of rows handed to writer.write_rows(r0, labels) (and the
    probabilities to probs_writer's). rows: only what tile rows [a, b) complete, as
    in the whole run (run_tiles' rows; ray_run's strips). Returns the tiles run."""
    def emit(i):
        r0, _, labels, probs = finished_labels(blender, i, label_dtype, nodata_label, probs_writer is not None)
        writer.write_rows(r0, labels)
        if probs is not None:
            probs_writer.write_rows(r0, probs)

    bar = _progress(len(blender.tiles), name, opts.progress)
    try:
        return run_tiles(blender, tile_reader(predictor, src, blender), predictor.run_batch, emit,
                         classes=predictor.bundle.num_classes, labels_model=labels_model, batch=opts.batch,
                         tta=opts.tta, prefetch=opts.prefetch, bar=bar, rows=rows)
    finally:
        if bar is not None:
            bar.close()


def predict_image(predictor, path, out_dir, opts: PredictOptions | None = None) -> RasterResult:
    """Predict one image file (PNG, JPEG, BMP, .npy; TIFF too, through rasterio when it is
    installed, else Pillow) read whole into memory: out_dir/<file name>_labels.png and
    _color.png (see label_png). Torch- and rasterio-free: `effseg run` on an edge device."""
    opts = opts or PredictOptions(format="png")
    opts.check()
    path, out = Path(path), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    r = read_raster(path, predictor.channels, bands=opts.bands, replicate_grey=opts.replicate_grey,
                    max_pixels=opts.max_pixels)
    h, w = r.pixels.shape[:2]
    (th, tw), (oy, ox) = plan_tiles(predictor, h, w, opts.tiling())
    bar = _progress(len(tile_starts(h, th, oy)) * len(tile_starts(w, tw, ox)), path.name, opts.progress)
    try:
        labels, tiles = predict_array(predictor, r.pixels, valid=r.valid, nodata=r.nodata, options=opts.tiling(),
                                      bar=bar)
    finally:
        if bar is not None:
            bar.close()
    paths = output_paths(out, path)
    write_label_pngs(predictor, labels, paths)
    return RasterResult(path, paths[0], None, None, tiles, time.perf_counter() - t0, h * w / 1e6)


def output_names(path: Path, fmt: str) -> list[str]:
    """The files an input writes in DIR (the class map first)."""
    if fmt == "png":
        return [p.name for p in output_paths(Path(), path)]
    return [output_name(path)]


def failure_reason(exc: BaseException) -> str:
    """What a failed input's line says: the exception's message, with its type where the
    message alone would not tell (I/O, memory, GDAL and ONNX Runtime errors)."""
    reason = str(exc) or type(exc).__name__
    module = type(exc).__module__
    if isinstance(exc, (OSError, MemoryError)) or "rasterio" in module or module.startswith("onnxruntime"):
        reason = f"{type(exc).__name__}: {reason}"
    return reason


def claim_output(taken: dict, f: Path, fmt: str = "tif") -> None:
    """Records the files input f writes in taken ({casefolded name: input}), or refuses f
    when one of them was already written in this run (it would be overwritten)."""
    names = output_names(f, fmt)
    clash = [taken[n.casefold()] for n in names if n.casefold() in taken]
    if clash:
        raise FileExistsError(f"its output {', '.join(names)} was already written in this run for "
                              f"{clash[0]}; not overwriting (rename one of them)")
    taken.update((n.casefold(), f) for n in names)


def predict_files(predictor, inputs, out_dir, opts: PredictOptions | None = None, *, on_error: str = "report",
                  on_failure=None, on_done=None, fill=None) -> PredictRun:
    """Every raster the INPUT arguments name (see expand_inputs) -> out_dir. on_error
    'report': a raster that fails is recorded (and passed to on_failure(path, reason))
    and the others go on; 'raise': the first error propagates. A bad bundle always ends
    the run. Two inputs whose outputs share a name (a.tif and a.png in tif format; names
    differing only in case) would write one file: the second is refused. opts.format
    picks the outputs, and which files a folder INPUT lists: rasters (tif) or the
    images the runtime reads (png: also .bmp and .npy).
    fill: see predict_raster."""
    opts = opts or PredictOptions()
    opts.check()
    if on_error not in ("report", "raise"):
        raise ValueError(f"on_error must be one of report, raise, got {on_error!r}")
    tile_geometry(predictor, opts.tile, opts.overlap)  # an argument error, before any raster is touched
    png = opts.format == "png"
    files = expand_inputs(inputs, IMAGE_EXTENSIONS if png else RASTER_EXTENSIONS)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    taken: dict[str, Path] = {}

    def one(f):
        claim_output(taken, f, opts.format)
        return predict_image(predictor, f, out, opts) if png else predict_raster(predictor, f, out, opts, fill=fill)

    return run_each(files, one, PredictRun(), on_error=on_error, on_failure=on_failure, on_done=on_done)


def run_each(items, one, run, *, on_error: str, on_failure=None, on_done=None, label=lambda item: item):
    """one(item) for each item into run.results; an item that fails is recorded in
    run.failed with its reason (and passed to on_failure(label, reason)) and the others go
    on, unless on_error is 'raise'. A bad bundle (BundleError) always ends the run: every
    item would fail the same way."""
    for item in items:
        try:
            r = one(item)
            run.results.append(r)
            if on_done is not None:
                on_done(r)
        except BundleError:
            raise
        except Exception as exc:  # noqa: BLE001  one bad input must not end the run
            if on_error == "raise":
                raise
            reason = failure_reason(exc)
            run.failed.append((label(item), reason))
            if on_failure is not None:
                on_failure(label(item), reason)
    return run
