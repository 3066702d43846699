"""--ray: strips of one raster and rasters spread over Ray workers give files byte-identical
to the single-process run. The strip arithmetic is checked without Ray (any cut, batches
straddling cuts, nodata tiles, probabilities, TTA); one local Ray session (2 CPUs, 2
workers) then runs 2 files and 1 raster in strips end to end."""
import sys

import numpy as np
import pytest
from bundle_cases import make_bundle
from raster_cases import rgb, write_tif

from effseg.predict import PredictOptions, predict_raster, ray_run
from effseg.runtime import Predictor

KW = dict(backend="auto", threads=1, nonfinite="nodata")


def _bundle(tmp_path):
    return make_bundle(tmp_path, kernel=3, dynamic_hw=True, dynamic_batch=True, tile_size=32, tile_overlap=8,
                       height=32, width=32)


def _raster(tmp_path, name="big.tif", h=150, w=97, seed=0):
    px = rgb(h, w, seed=seed)
    px[:, 40:80, :] = 0  # all bands 0 = nodata: whole tiles there are not run
    return write_tif(tmp_path / name, px, nodata=0, tiled=True, block=64)


def _arrays(path):
    import rasterio

    with rasterio.open(path) as src:
        return src.read(), src.crs, src.transform, src.tags()


def _same_files(a, b):
    assert a.read_bytes() == b.read_bytes(), f"{a} and {b} differ"
    ra, rb = _arrays(a), _arrays(b)
    np.testing.assert_array_equal(ra[0], rb[0])
    assert ra[1:] == rb[1:]


def _features(gpkg):
    import sqlite3

    con = sqlite3.connect(gpkg)
    try:
        return con.execute(f'SELECT * FROM "{gpkg.stem}" ORDER BY fid').fetchall()
    finally:
        con.close()


def _local_fill(cuts):
    """predict_raster's fill from strip_rows, in this process: what the Ray driver does."""
    def fill(predictor, src, blender, writer, probs_writer, opts, *rest):
        for a, b in cuts(len(blender.ys)):
            r0, labels, probs = ray_run.strip_rows(predictor, src, opts, a, b)
            assert r0 == blender.ys[a]
            writer.write_rows(r0, labels)
            if probs_writer is not None:
                probs_writer.write_rows(r0, probs)
        return len(blender.tiles)
    return fill


@pytest.mark.parametrize("count,batch,tta", [(1, 4, "none"), (2, 3, "none"), (3, 5, "flip"), (99, 4, "none")])
def test_strips_give_the_same_bytes(tmp_path, count, batch, tta):
    p = Predictor(_bundle(tmp_path), **KW)
    src = _raster(tmp_path)
    opts = PredictOptions(batch=batch, tta=tta, probs=True, progress=False)
    one = predict_raster(p, src, tmp_path / "one", opts)
    split = predict_raster(p, src, tmp_path / "split", opts,
                           fill=_local_fill(lambda n: ray_run.strips(n, count)))
    assert len(ray_run.strips(7, count)) == min(7, count)
    _same_files(one.output, split.output)
    _same_files(one.probs, split.probs)
    labels = _arrays(one.output)[0]
    assert (labels == 255).any() and (labels < 4).any()  # nodata rows and classes both present


class _BatchCoupled:
    """A model whose answer for a tile depends on the other tiles of its call (as a
    batch-norm in training mode, or a kernel whose rounding depends on the batch
    size, would): strips must hand the model the single-process run's batches."""

    def __init__(self, predictor):
        self._p = predictor

    def __getattr__(self, name):
        return getattr(self._p, name)

    def run_batch(self, x):
        out = self._p.run_batch(x)
        return out + np.float32(3.0) * np.float32(x.mean()) * np.arange(out.shape[1], dtype=np.float32)[:, None, None]


def test_strips_keep_the_model_batches(tmp_path):
    p = _BatchCoupled(Predictor(_bundle(tmp_path), **KW))
    src = _raster(tmp_path, h=200)
    opts = PredictOptions(batch=3, progress=False)
    one = predict_raster(p, src, tmp_path / "one", opts)
    split = predict_raster(p, src, tmp_path / "split", opts, fill=_local_fill(lambda n: ray_run.strips(n, 4)))
    _same_files(one.output, split.output)


def test_strip_cuts_partition_the_rows():
    for n in (1, 2, 7, 10):
        for c in (1, 3, 10, 20):
            s = ray_run.strips(n, c)
            assert s[0][0] == 0 and s[-1][1] == n and all(a < b for a, b in s)
            assert all(s[i][1] == s[i + 1][0] for i in range(len(s) - 1))


def test_ray_options_errors(tmp_path, monkeypatch):
    for bad, match in [(dict(address="nohost"), "--ray must be auto, local or the head's HOST:PORT"),
                       (dict(workers=0), "--ray-workers must be a positive integer"),
                       (dict(gpus=-0.5), "--ray-gpus must be a number > 0"),
                       (dict(cpus=0), "--ray-cpus must be a number > 0")]:
        with pytest.raises(ValueError, match=match):
            ray_run.RayOptions(**bad).check()
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(RuntimeError, match=r'pip install "effseg\[ray\]"'):
        ray_run.ray_or_raise()


def test_worker_count():
    class Cluster:
        @staticmethod
        def nodes():
            return [{"Alive": True}, {"Alive": False}, {"Alive": True}]

        @staticmethod
        def cluster_resources():
            return {"CPU": 8.0, "GPU": 2.0}

    assert ray_run.worker_count(Cluster, ray_run.RayOptions()) == 2  # one per live node
    assert ray_run.worker_count(Cluster, ray_run.RayOptions(gpus=0.5)) == 4
    assert ray_run.worker_count(Cluster, ray_run.RayOptions(workers=3, gpus=0.5)) == 3
    with pytest.raises(ValueError, match="--ray-gpus 4: the Ray cluster has 2 GPU"):
        ray_run.worker_count(Cluster, ray_run.RayOptions(gpus=4))


def test_cli_ray_errors(tmp_path, monkeypatch, capsys):
    from effseg.cli import main

    bundle = _bundle(tmp_path)
    src = _raster(tmp_path, "a.tif", 40, 40)
    assert main(["predict", str(bundle), str(src), "--out", str(tmp_path / "o"), "--ray", "nohost"]) == 2
    assert "--ray must be auto, local or the head's HOST:PORT" in capsys.readouterr().err
    assert main(["predict", str(bundle), str(src), "--out", str(tmp_path / "o"), "--ray", "auto",
                 "--ray-gpus", "0"]) == 2
    assert "--ray-gpus must be a number > 0" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)
    assert main(["predict", str(bundle), str(src), "--out", str(tmp_path / "o"), "--ray", "auto"]) == 2
    assert 'pip install "effseg[ray]"' in capsys.readouterr().err
    # Refused before Ray is asked for (it is not importable here): strips are GeoTIFF rows.
    assert main(["run", str(bundle), str(src), "--out", str(tmp_path / "o"), "--ray", "auto"]) == 2
    assert "effseg run: error: --ray writes GeoTIFF class maps (--format tif), not --format png" in (
        capsys.readouterr().err)
    assert main(["predict", str(bundle), "cam:0", "--out", str(tmp_path / "o"), "--ray", "auto"]) == 2
    assert "--ray takes rasters only; video files, cameras and streams run without --ray" in capsys.readouterr().err
    assert not (tmp_path / "o" / "a.tif").exists() and not list((tmp_path / "o").glob("*.png"))


def test_strip_bounds_are_checked(tmp_path):
    from effseg.predict.geotiff import RasterSource

    p = Predictor(_bundle(tmp_path), **KW)
    src = RasterSource(_raster(tmp_path), 3, "uint8")
    try:
        with pytest.raises(ValueError, match=r"tile rows \[3, 99\) are not within the raster's 6 tile rows"):
            ray_run.strip_rows(p, src, PredictOptions(), 3, 99)
    finally:
        src.close()


class _FakeRay:
    """ray.data as far as ray_run uses it, in this process: the workers are built from
    the same classes and constructor arguments, and results come back last first (Ray
    gives no order)."""

    class data:  # noqa: N801  stands in for the ray.data module
        class ActorPoolStrategy:
            def __init__(self, size):
                self.size = size

        @staticmethod
        def from_items(items):
            return _FakeDataset(items)


class _FakeDataset:
    def __init__(self, items):
        self.items, self.udf = items, None

    def map_batches(self, cls, *, batch_size, batch_format, compute, fn_constructor_kwargs, num_cpus, **extra):
        assert batch_size == 1 and batch_format == "numpy" and compute.size >= 1 and num_cpus > 0
        self.workers = [cls(**fn_constructor_kwargs) for _ in range(compute.size)]
        return self

    def iter_batches(self, batch_size, batch_format):
        outs = [self.workers[n % len(self.workers)]({k: np.array([v]) for k, v in item.items()})
                for n, item in enumerate(self.items)]
        yield from reversed(outs)


def test_ray_driver_without_ray(tmp_path):
    """The driver's side (files back from workers, strips put in order) on the fake."""
    from functools import partial

    bundle = _bundle(tmp_path)
    p = Predictor(bundle, **KW)
    a, b = _raster(tmp_path, "a.tif", 70, 50, seed=1), _raster(tmp_path, "b.tif", 45, 66, seed=2)
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a raster")
    opts = PredictOptions(batch=3, probs=True, vector="geojson", progress=False)
    ropts = ray_run.RayOptions(address=None)
    payload = ray_run.bundle_files(p)
    assert set(payload) == {"meta.json", *p.bundle.meta["files"]}
    failed, done = [], []
    run = ray_run._by_raster(_FakeRay, ropts, payload, KW, [a, bad, b], tmp_path / "ray", opts, 2, "report",
                             lambda f, why: failed.append(f), done.append)
    assert [r.input for r in run.results] == [a, b] and failed == [bad] and len(done) == 2
    assert "cannot be opened as a raster" in run.failed[0][1]
    fill = partial(ray_run._ray_fill, _FakeRay, ropts, payload, KW, a, 2)
    strip = predict_raster(p, a, tmp_path / "strip", opts, fill=fill)
    for r in (run.results[0], strip):
        one = predict_raster(p, r.input, tmp_path / "one", opts)
        _same_files(one.output, r.output)
        _same_files(one.probs, r.probs)
        assert r.vector.read_bytes() == one.vector.read_bytes()
    with pytest.raises(RuntimeError, match=r"a\.tif: .*cannot be opened as a raster"):
        ray_run._by_raster(_FakeRay, ropts, payload, KW, [bad.rename(tmp_path / "a.tif")], tmp_path / "r2", opts,
                           1, "raise", None, None)


def test_checkpoint_models_are_refused(tmp_path):
    import shutil

    p = Predictor(_bundle(tmp_path), **KW)
    shutil.rmtree(p.bundle.path)  # what load_predictor leaves of a checkpoint's temporary bundle
    with pytest.raises(ValueError, match="--ray takes a bundle MODEL .* effseg export CKPT"):
        ray_run.bundle_files(p)


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray instance for the module (its start is most of this test's time),
    as small as Ray Data runs on: 2 logical CPUs for the 2 one-CPU workers, no dashboard,
    workers' logs kept off the test output. Shut down afterwards, failed or not."""
    ray = pytest.importorskip("ray", reason="ray (pip install 'effseg[ray]', in dev) is not installed")
    pytest.importorskip("ray.data", reason="ray[data] is not installed")
    if ray.is_initialized():
        pytest.fail("a Ray session is already running in this process; this test starts its own")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def test_ray_matches_single_process(tmp_path, ray_session):
    p = Predictor(_bundle(tmp_path), **KW)
    a, b = _raster(tmp_path, "a.tif", 70, 50, seed=1), _raster(tmp_path, "b.tif", 45, 66, seed=2)
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a raster")
    big = _raster(tmp_path, "big.tif")
    opts = PredictOptions(batch=3, probs=True, vector="gpkg", progress=False)
    ropts = ray_run.RayOptions(address=None, workers=2)
    done, failed = [], []
    run = ray_run.predict_files_ray(p, [a, bad, b], tmp_path / "ray", opts, ropts, predictor_kwargs=KW,
                                    on_done=done.append, on_failure=lambda f, why: failed.append((f, why)))
    assert [r.input for r in run.results] == [a, b] and len(done) == 2
    assert failed == run.failed and run.failed[0][0] == bad and "cannot be opened as a raster" in failed[0][1]
    strip = ray_run.predict_files_ray(p, [big], tmp_path / "ray", opts, ropts, predictor_kwargs=KW)
    assert not strip.failed
    for r in run.results + strip.results:
        one = predict_raster(p, r.input, tmp_path / "one", opts)
        assert r.output.name == one.output.name and r.tiles == one.tiles
        _same_files(one.output, r.output)
        _same_files(one.probs, r.probs)
        assert _features(r.vector) == _features(one.vector) and len(_features(r.vector)) > 1
    assert sorted(f.name for f in (tmp_path / "ray").iterdir()) == sorted(
        f.name for f in (tmp_path / "one").iterdir())
