"""`effseg predict --ray`: the same prediction spread over a Ray cluster with Ray Data.

Several rasters: one task per raster; each worker (a Ray Data actor holding one model)
runs predict_raster into a scratch folder and hands the finished files back; the driver
writes them into --out. One raster: its tile rows are cut into strips; a worker computes
the class-map rows of a strip and the driver writes the strips in order through the
ordinary writer. Either way the files are byte-identical to a single-process run:

- a strip is the runtime's one tile engine (effseg.runtime.tiled.run_tiles) asked for a
  range of tile rows: its rows are blended from every tile row that touches them, added
  in the same order onto the same zeroed accumulator, so the float sums are the same;
  and the model sees the same batches (the tiles sharing a model call with the strip's
  at its ends are run too), so no answer depends on where a strip was cut;
- the driver writes whole rows in order, so the GeoTIFF's blocks are the same.

The bundle travels with the job (its files, a few MB): workers need effseg and the
inputs' paths (a shared filesystem or GDAL's /vsi URLs), not the model folder or --out.
Ray is imported only here, and only when asked for.
"""
from __future__ import annotations

import os
import pickle
import shutil
import tempfile
import weakref
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np

from ..runtime.bundle import META_NAME
from ..runtime.tiled import tile_geometry
from .geotiff import RasterSource, gdal_env
from .inputs import RASTER_EXTENSIONS, expand_inputs
from .pipeline import (PredictOptions, PredictRun, RasterResult, claim_output, failure_reason, fill_rows,
                       label_format, predict_files, predict_raster, raster_blender)

RAY_HINT = 'pip install "effseg[ray]"'


def ray_or_raise():
    try:
        import ray
        import ray.data  # noqa: F401  the part of Ray this needs, not always installed with it
    except ImportError as exc:
        raise RuntimeError(f"--ray needs Ray Data, which is not installed: {RAY_HINT} (or pip install 'ray[data]')"
                           ) from exc
    return ray


@dataclass
class RayOptions:
    """address: 'auto' (the cluster this machine belongs to), HOST:PORT of the head,
    'local' (start Ray on this machine), or None (a Ray session the caller started).
    workers: actors, one model each (default: one per node, or per --ray-gpus share of
    the GPUs); gpus: GPUs per worker (fractions share a GPU); cpus: CPUs per worker;
    strips_per_worker: strips one raster is cut into, per worker (load balance)."""
    address: str | None = "auto"
    workers: int | None = None
    gpus: float | None = None
    cpus: float = 1.0
    strips_per_worker: int = 4

    def check(self) -> None:
        a = self.address
        if a is not None and (not isinstance(a, str) or not (a in ("auto", "local") or ":" in a)):
            raise ValueError(f"--ray must be auto, local or the head's HOST:PORT (e.g. 10.0.0.1:6379), got {a!r}")
        if self.workers is not None and (not isinstance(self.workers, int) or isinstance(self.workers, bool)
                                         or self.workers < 1):
            raise ValueError(f"--ray-workers must be a positive integer, got {self.workers!r}")
        for name in ("gpus", "cpus"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0):
                raise ValueError(f"--ray-{name} must be a number > 0 (per worker; fractions share a device), got {v!r}")
        if not isinstance(self.strips_per_worker, int) or self.strips_per_worker < 1:
            raise ValueError(f"strips_per_worker must be a positive integer, got {self.strips_per_worker!r}")


def connect(ropts: RayOptions):
    ray = ray_or_raise()
    if not ray.is_initialized():
        if ropts.address is None:
            raise ValueError("no Ray session is running: pass --ray auto, local or HOST:PORT")
        ray.init(address=None if ropts.address == "local" else ropts.address)
    return ray


def worker_count(ray, ropts: RayOptions) -> int:
    if ropts.workers is not None:
        return ropts.workers
    if ropts.gpus:
        gpus = ray.cluster_resources().get("GPU", 0)
        if gpus < ropts.gpus:
            raise ValueError(f"--ray-gpus {ropts.gpus}: the Ray cluster has {gpus:g} GPU(s)")
        return max(1, int(gpus // ropts.gpus))
    return max(1, sum(1 for n in ray.nodes() if n.get("Alive")))


def bundle_files(predictor) -> dict[str, bytes]:
    folder = Path(predictor.bundle.path)
    names = [META_NAME, *predictor.bundle.meta["files"]]
    if not all((folder / n).is_file() for n in names):
        raise ValueError("--ray takes a bundle MODEL (its files are sent to the workers); export the checkpoint "
                         "first: effseg export CKPT --arch NAME --out BUNDLE")
    return {n: (folder / n).read_bytes() for n in names}


class _Worker:
    """One model per Ray actor, loaded from the bundle's files once."""

    def __init__(self, files: dict, predictor_kwargs: dict, opts: PredictOptions):
        from ..runtime.predictor import Predictor

        self.dir = Path(tempfile.mkdtemp(prefix="effseg-ray-"))
        weakref.finalize(self, shutil.rmtree, self.dir, True)
        for name, data in files.items():
            (self.dir / "bundle" / name).parent.mkdir(parents=True, exist_ok=True)
            (self.dir / "bundle" / name).write_bytes(data)
        self.predictor = Predictor(self.dir / "bundle", **predictor_kwargs)
        # A worker's progress bar would only reach the driver as interleaved log lines.
        self.opts = replace(opts, progress=False)


class RasterWorker(_Worker):
    """Batch rows {index, path} -> {index, result}: result pickles the written files'
    bytes and the raster's numbers, or the reason it failed. (One pickled column: Ray
    Data's tensor columns need one shape per block, and strips and files differ.)"""

    def __call__(self, batch: dict) -> dict:
        results = []
        for path in batch["path"]:
            out = Path(tempfile.mkdtemp(dir=self.dir))
            try:
                r = predict_raster(self.predictor, path, out, self.opts)
                files = {key: (p.name, p.read_bytes()) for key, p in
                         (("output", r.output), ("probs", r.probs), ("vector", r.vector)) if p is not None}
                res = {"files": files, "tiles": r.tiles, "seconds": r.seconds, "megapixels": r.megapixels}
            except Exception as exc:  # noqa: BLE001  reported by the driver like a single-process failure
                res = {"error": failure_reason(exc)}
            finally:
                shutil.rmtree(out, ignore_errors=True)
            results.append(pickle.dumps(res))
        return {"index": np.asarray(batch["index"]), "result": np.array(results, dtype=object)}


class StripWorker(_Worker):
    """Batch rows {strip, a, b} (tile rows [a, b)) -> {strip, result}: result pickles
    (first row, class-map rows, probability rows or None)."""

    def __init__(self, files: dict, predictor_kwargs: dict, opts: PredictOptions, path: str):
        super().__init__(files, predictor_kwargs, opts)
        self.path = path

    def __call__(self, batch: dict) -> dict:
        results = []
        with gdal_env():
            src = RasterSource(self.path, self.predictor.channels, self.predictor.bundle.pixel_dtype,
                               bands=self.opts.bands, replicate_grey=self.opts.replicate_grey)
            try:
                for a, b in zip(batch["a"], batch["b"]):
                    results.append(pickle.dumps(strip_rows(self.predictor, src, self.opts, int(a), int(b))))
            finally:
                src.close()
        return {"strip": np.asarray(batch["strip"]), "result": np.array(results, dtype=object)}


class _Rows:
    """Collects what write_rows hands a writer."""

    def __init__(self):
        self.r0, self.parts = None, []

    def write_rows(self, r0, rows):
        self.r0 = r0 if self.r0 is None else self.r0
        self.parts.append(np.array(rows))

    def rows(self):
        return np.concatenate(self.parts, axis=-2) if self.parts else None


def strip_rows(predictor, src, opts: PredictOptions, a: int, b: int) -> tuple[int, np.ndarray, np.ndarray | None]:
    """(first row, class-map rows, uint8 probability rows with opts.probs, else None) that
    tile rows [a, b) complete, exactly as the single-process run computes them: the
    runtime's engine with a row range (run_tiles' rows: halo tile rows above, whole
    model batches at both ends)."""
    blender = raster_blender(predictor, src, opts)
    label_dtype, nodata_label = label_format(predictor)
    labels_model = predictor.bundle.output["kind"] == "labels"
    labels, probs = _Rows(), (_Rows() if opts.probs else None)
    fill_rows(predictor, src, blender, labels, probs, replace(opts, progress=False), nodata_label, label_dtype,
              labels_model, f"tile rows {a}-{b}", rows=(a, b))
    return labels.r0, labels.rows(), None if probs is None else probs.rows()


def strips(nrows: int, count: int) -> list[tuple[int, int]]:
    """[a, b) ranges of tile rows: `count` (at most nrows) contiguous strips, sizes within one."""
    count = max(1, min(count, nrows))
    edges = [round(i * nrows / count) for i in range(count + 1)]
    return [(edges[i], edges[i + 1]) for i in range(count)]


def _map(ray, ds, cls, ropts: RayOptions, n: int, **kwargs):
    compute = ray.data.ActorPoolStrategy(size=n)
    extra = {"num_gpus": ropts.gpus} if ropts.gpus else {}
    # Ray Data spreads actors over the nodes by default (DataContext.scheduling_strategy).
    return ds.map_batches(cls, batch_size=1, batch_format="numpy", compute=compute, fn_constructor_kwargs=kwargs,
                          num_cpus=ropts.cpus, **extra)


def _ray_fill(ray, ropts: RayOptions, files: dict, predictor_kwargs: dict, path: Path, workers: int,
              predictor, src, blender, writer, probs_writer, opts, nodata_label, label_dtype, labels_model,
              name) -> int:
    """predict_raster's fill: strips computed by Ray workers, written here in order."""
    items = [{"strip": s, "a": a, "b": b}
             for s, (a, b) in enumerate(strips(len(blender.ys), workers * ropts.strips_per_worker))]
    ds = _map(ray, ray.data.from_items(items), StripWorker, ropts, min(workers, len(items)), files=files,
              predictor_kwargs=predictor_kwargs, opts=opts, path=str(path))
    pending, nxt = {}, 0
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        for s, res in zip(batch["strip"], batch["result"]):
            pending[int(s)] = pickle.loads(res)
        # Strips finish in any order; the writer takes rows in order.
        while nxt in pending:
            r0, labels, probs = pending.pop(nxt)
            writer.write_rows(r0, labels)
            if probs_writer is not None:
                probs_writer.write_rows(r0, probs)
            nxt += 1
    if nxt != len(items):
        raise RuntimeError(f"Ray returned {nxt} of the {len(items)} strips of {name}")
    return len(blender.tiles)


def predict_files_ray(predictor, inputs, out_dir, opts: PredictOptions | None = None,
                      ropts: RayOptions | None = None, *, predictor_kwargs: dict | None = None,
                      on_error: str = "report", on_failure=None, on_done=None) -> PredictRun:
    """predict_files on a Ray cluster. predictor: the driver's (its bundle is sent to the
    workers; it runs no tiles here); predictor_kwargs: how workers open it (backend,
    threads, nonfinite). One raster is cut into strips; several go one per task."""
    opts = opts or PredictOptions()
    ropts = ropts or RayOptions()
    opts.check()
    ropts.check()
    if opts.format != "tif":
        # The strips are rows of a GeoTIFF written in order here; PNG outputs are made whole.
        raise ValueError(f"--ray writes GeoTIFF class maps (--format tif), not --format {opts.format}")
    if on_error not in ("report", "raise"):
        raise ValueError(f"on_error must be one of report, raise, got {on_error!r}")
    tile_geometry(predictor, opts.tile, opts.overlap)
    files = expand_inputs(inputs, RASTER_EXTENSIONS)
    payload = bundle_files(predictor)
    kw = dict(predictor_kwargs or {})
    # The workers' models must cut the tiles as this one does (plan_tiles reads .tile).
    kw.setdefault("tile", getattr(predictor, "tile", None))
    ray = connect(ropts)
    ray.data.DataContext.get_current().enable_progress_bars = bool(opts.progress)
    workers = worker_count(ray, ropts)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if len(files) == 1:
        fill = partial(_ray_fill, ray, ropts, payload, kw, files[0], workers)
        return predict_files(predictor, files, out, opts, on_error=on_error, on_failure=on_failure,
                             on_done=on_done, fill=fill)
    return _by_raster(ray, ropts, payload, kw, files, out, opts, workers, on_error, on_failure, on_done)


def _by_raster(ray, ropts, payload, kw, files, out, opts, workers, on_error, on_failure, on_done) -> PredictRun:
    out.mkdir(parents=True, exist_ok=True)
    run = PredictRun()
    failed: dict[int, tuple[Path, str]] = {}
    done: dict[int, RasterResult] = {}

    def fail(n, f, reason):
        if on_error == "raise":
            raise RuntimeError(f"{f}: {reason}")
        failed[n] = (f, reason)
        if on_failure is not None:
            on_failure(f, reason)

    taken: dict = {}
    items = []
    for n, f in enumerate(files):
        try:
            claim_output(taken, f)
            items.append({"index": n, "path": str(f)})
        except FileExistsError as exc:
            fail(n, f, str(exc))
    if items:
        ds = _map(ray, ray.data.from_items(items), RasterWorker, ropts, min(workers, len(items)), files=payload,
                  predictor_kwargs=kw, opts=opts)
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for n, res in zip(batch["index"], batch["result"]):
                n, res, f = int(n), pickle.loads(res), files[int(n)]
                if "error" in res:
                    fail(n, f, res["error"])
                    continue
                written = {}
                for key, (name, data) in res["files"].items():
                    tmp = out / f".{name}.part"
                    tmp.write_bytes(data)
                    os.replace(tmp, out / name)
                    written[key] = out / name
                r = RasterResult(f, written["output"], written.get("probs"), written.get("vector"), res["tiles"],
                                 res["seconds"], res["megapixels"])
                done[n] = r
                if on_done is not None:
                    on_done(r)
    run.results = [done[n] for n in sorted(done)]
    run.failed = [failed[n] for n in sorted(failed)]
    return run
