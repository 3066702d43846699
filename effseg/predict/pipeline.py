"""Huge-image inference: a reader thread reads and normalises tile windows, the calling
thread runs the model on batches of tiles (with test-time augmentation), a writer thread
blends them row by row and writes finished block rows. Bounded queues between the three
keep the model busy while I/O runs and keep memory to a few batches plus one tile row
of logits, whatever the raster's area.
"""
from __future__ import annotations

import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..runtime.bundle import BundleError
from .blend import RAMPS, RowBlender
from .geotiff import ClassMapWriter, RasterSource, class_tags, gdal_env, replace, to_cog
from .inputs import expand_inputs, output_name
from .tta import TTA, run_tta

_DONE = object()
# The stride of the zoo encoders' deepest feature map: dynamic-size models take multiples of it.
TILE_MULTIPLE = 32
# Columns per step when turning blended logits into classes: bounds the float temporaries.
_CHUNK = 2048


@dataclass
class PredictOptions:
    """tile: tile side for dynamic-size bundles (default meta.json tile.size); overlap:
    pixels shared by neighbouring tiles (default tile.overlap, at most half a tile);
    batch: tiles per model call; tta: none | flip | d4; blend: cosine | linear ramps;
    bands (1-based) / replicate_grey: which raster bands feed the model; probs: also
    write <stem>_probs.tif; cog: write Cloud-Optimised GeoTIFFs; vector: also write
    polygons (geojson or gpkg), simplified at `simplify` pixels."""
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

    def check(self) -> None:
        for name in ("tile", "overlap"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < (1 if name == "tile" else 0)):
                raise ValueError(f"--{name} must be an integer >= {1 if name == 'tile' else 0}, got {v!r}")
        if not isinstance(self.batch, int) or isinstance(self.batch, bool) or self.batch < 1:
            raise ValueError(f"--batch must be a positive integer (tiles per model call), got {self.batch!r}")
        if self.tta not in TTA:
            raise ValueError(f"--tta must be one of {', '.join(TTA)}, got {self.tta!r}")
        if self.blend not in RAMPS:
            raise ValueError(f"--blend must be one of {', '.join(RAMPS)}, got {self.blend!r}")
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


def tile_geometry(predictor, tile: int | None, overlap: int | None) -> tuple[tuple[int, int], int]:
    inp = predictor.bundle.input
    meta_tile = predictor.bundle.meta["tile"]
    if inp["dynamic_hw"]:
        if tile is not None and tile % TILE_MULTIPLE:
            raise ValueError(f"--tile must be a multiple of {TILE_MULTIPLE} (the stride of the encoders' deepest "
                             f"feature map), got {tile}")
        th = tw = tile or meta_tile["size"]
    else:
        th, tw = inp["height"], inp["width"]
        if tile is not None and (tile, tile) != (th, tw):
            raise ValueError(f"--tile {tile}: this bundle's model takes only {th}x{tw} tiles (a static input size); "
                             "leave --tile out, or export with --dynamic-hw for other tile sizes")
    ov = meta_tile["overlap"] if overlap is None else overlap
    ov = min(ov, min(th, tw) // 2) if overlap is None else ov
    if not 0 <= ov <= min(th, tw) // 2:
        raise ValueError(f"--overlap must be between 0 and half the {th}x{tw} tile ({min(th, tw) // 2}), got {ov}")
    return (th, tw), ov


class _Stages:
    """Error plumbing for the three stages: the first exception stops them all and is
    re-raised in the calling thread."""

    def __init__(self):
        self.stop = threading.Event()
        self.errors: list[BaseException] = []

    def fail(self, exc: BaseException) -> None:
        self.errors.append(exc)
        self.stop.set()

    def put(self, q: queue.Queue, item) -> None:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return
            except queue.Full:
                pass

    def get(self, q: queue.Queue):
        while True:
            try:
                return q.get(timeout=0.05)
            except queue.Empty:
                if self.stop.is_set():
                    return _DONE


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
    (th, tw), overlap = tile_geometry(predictor, opts.tile, opts.overlap)
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
            blender = RowBlender(h, w, (th, tw), overlap, k, opts.blend)
            writer = ClassMapWriter(tmp, src, count=1, nodata=nodata_label, dtype=label_dtype,
                                    palette=predictor.bundle.palette if k <= 255 else None,
                                    tags=class_tags(predictor.bundle.classes))
            if probs_final:
                probs_writer = ClassMapWriter(
                    tmp_probs, src, count=k, nodata=None, tags=class_tags(predictor.bundle.classes),
                    band_tags=[{"class": c, "scale": "probability x 255"} for c in predictor.bundle.classes])
            run_rows = fill or _run_stages
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


def _run_stages(predictor, src, blender, writer, probs_writer, opts, nodata_label, label_dtype, labels_model,
                name) -> int:
    stages = _Stages()
    q_in: queue.Queue = queue.Queue(maxsize=opts.prefetch)
    q_out: queue.Queue = queue.Queue(maxsize=opts.prefetch)
    tiles = blender.tiles

    def reader():
        try:
            batch = []
            for i, j in tiles:
                if stages.stop.is_set():
                    return
                batch.append(read_tile(predictor, src, blender, i, j))
                if len(batch) == opts.batch:
                    stages.put(q_in, batch)
                    batch = []
            if batch:
                stages.put(q_in, batch)
        except BaseException as exc:  # noqa: BLE001  re-raised in the calling thread
            stages.fail(exc)
        finally:
            stages.put(q_in, _DONE)

    bar = _progress(len(tiles), name, opts.progress)
    t_start = time.perf_counter()

    def write():
        try:
            per_row = len(blender.xs)
            seen = 0
            while True:
                item = stages.get(q_out)
                if item is _DONE:
                    return
                for i, j, logits, mask in item:
                    blender.add(i, j, logits, mask)
                    seen += 1
                    if seen % per_row == 0:
                        r1 = write_rows(blender, i, writer, probs_writer, nodata_label, label_dtype)
                        blender.advance(i)
                        if bar is not None:
                            mp = r1 * blender.w / 1e6 / max(time.perf_counter() - t_start, 1e-9)
                            bar.set_postfix_str(f"{mp:.2f} MP/s", refresh=False)
                if bar is not None:
                    bar.update(len(item))
        except BaseException as exc:  # noqa: BLE001  re-raised in the calling thread
            stages.fail(exc)

    threads = [threading.Thread(target=reader, name="effseg-read", daemon=True),
               threading.Thread(target=write, name="effseg-write", daemon=True)]
    for t in threads:
        t.start()
    try:
        while True:
            item = stages.get(q_in)
            if item is _DONE or stages.stop.is_set():
                break
            stages.put(q_out, batch_logits(predictor, item, opts.tta, labels_model))
    except BaseException as exc:  # noqa: BLE001
        stages.fail(exc)
    finally:
        stages.put(q_out, _DONE)
        for t in threads:
            t.join()
        if bar is not None:
            bar.close()
    if stages.errors:
        raise stages.errors[0]
    return len(tiles)


def read_tile(predictor, src, blender, i: int, j: int) -> tuple:
    """(i, j, model input, nodata mask or None) of tile (i, j)."""
    px, valid = src.read_tile(blender.ys[i], blender.xs[j], blender.th, blender.tw)
    mask = predictor.nodata_mask(px, valid, src.nodata)
    return i, j, predictor.prepare(px, mask), mask


def batch_logits(predictor, item: list, tta: str, labels_model: bool) -> list:
    """One batch of read_tile results -> [(i, j, logits, mask)]. The batch is what the
    model sees in one call: runs that must agree bit for bit (ray_run) form the same ones."""
    k = predictor.bundle.num_classes
    th, tw = item[0][2].shape[-2:]
    live = [n for n, t in enumerate(item) if t[3] is None or not t[3].all()]
    logits = np.zeros((len(item), k, th, tw), np.float32)
    if live:
        # A tile that is nodata throughout has no answer to compute.
        x = np.stack([item[n][2] for n in live])
        logits[live] = run_tta(predictor.run_batch, x, tta, k, labels_model)
    return [(i, j, logits[n], mask) for n, (i, j, _, mask) in enumerate(item)]


def write_rows(blender, i, writer, probs_writer, nodata_label, label_dtype) -> int:
    """Class map (and probabilities) of the rows tile row i completed, computed in column
    chunks: a full-width float copy of the strip would be the largest buffer of the run."""
    r0, r1 = blender.row_span(i)
    nodata = blender.nodata_rows(i)
    labels = np.empty((r1 - r0, blender.w), label_dtype)
    probs = None if probs_writer is None else np.empty((blender.acc.shape[0], r1 - r0, blender.w), np.uint8)
    for c0 in range(0, blender.w, _CHUNK):
        c1 = min(c0 + _CHUNK, blender.w)
        logits = blender.blended(i, c0, c1)
        labels[:, c0:c1] = logits.argmax(axis=0)
        if probs is not None:
            e = np.exp(logits - logits.max(axis=0, keepdims=True))
            probs[:, :, c0:c1] = np.rint(e * (255.0 / e.sum(axis=0, keepdims=True)))
    labels[nodata] = nodata_label
    writer.write_rows(r0, labels)
    if probs is not None:
        probs[:, nodata] = 0
        probs_writer.write_rows(r0, probs)
    return r1


def failure_reason(exc: BaseException) -> str:
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, (OSError, MemoryError)) or "rasterio" in type(exc).__module__:
        reason = f"{type(exc).__name__}: {reason}"
    return reason


def claim_output(taken: dict, f: Path) -> None:
    """Two inputs with one stem would write one file: the second is refused."""
    key = output_name(f).casefold()
    if key in taken:
        raise FileExistsError(f"its output {output_name(f)} was already written in this run for "
                              f"{taken[key]}; not overwriting (rename one of them)")
    taken[key] = f


def predict_files(predictor, inputs, out_dir, opts: PredictOptions | None = None, *, on_error: str = "report",
                  on_failure=None, on_done=None, fill=None) -> PredictRun:
    """Every raster the INPUT arguments name (see expand_inputs) -> out_dir. on_error
    'report': a raster that fails is recorded (and passed to on_failure(path, reason))
    and the others go on; 'raise': the first error propagates. A bad bundle always ends
    the run. Two inputs with one stem would write one file: the second is refused.
    fill: see predict_raster."""
    opts = opts or PredictOptions()
    opts.check()
    tile_geometry(predictor, opts.tile, opts.overlap)  # an argument error, before any raster is touched
    files = expand_inputs(inputs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = PredictRun()
    taken: dict[str, Path] = {}
    for f in files:
        try:
            claim_output(taken, f)
            r = predict_raster(predictor, f, out, opts, fill=fill)
            run.results.append(r)
            if on_done is not None:
                on_done(r)
        except BundleError:
            raise
        except Exception as exc:  # noqa: BLE001  one bad raster must not end the run
            if on_error == "raise":
                raise
            reason = failure_reason(exc)
            run.failed.append((f, reason))
            if on_failure is not None:
                on_failure(f, reason)
    return run
