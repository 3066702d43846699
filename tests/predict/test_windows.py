"""Memory does not grow with the raster's area: every read is one tile's window, every
write at most one block row, and the traced peak stays far below the whole raster."""
import threading
import tracemalloc

import pytest
import rasterio
from bundle_cases import make_bundle
from raster_cases import rgb, write_tif

from effseg.predict import PredictOptions, geotiff, predict_raster
from effseg.runtime import Predictor


def test_reads_are_tile_windows_and_writes_block_rows(tmp_path, monkeypatch):
    p = Predictor(make_bundle(tmp_path, kernel=1, dynamic_hw=True, tile_size=32, tile_overlap=8, height=32, width=32))
    h, w = 300, 70
    write_tif(tmp_path / "tall.tif", rgb(h, w))
    reads, writes = [], []
    real_read = geotiff.read_window
    monkeypatch.setattr(geotiff, "read_window", lambda src, idx, win: reads.append(win) or real_read(src, idx, win))
    real_write = rasterio.io.DatasetWriter.write

    def write(self, arr, *a, window=None, **kw):
        writes.append(window)
        return real_write(self, arr, *a, window=window, **kw)

    monkeypatch.setattr(rasterio.io.DatasetWriter, "write", write)
    predict_raster(p, tmp_path / "tall.tif", tmp_path / "o", PredictOptions(progress=False))
    assert len(reads) == 13 * 3  # one read per tile
    assert max(r.height for r in reads) <= 32 and max(r.width for r in reads) <= 32
    # The last tile row (288..320) reflects rows 299..279 back in: its window starts at 279.
    rows = list(range(0, 288, 24)) + [279]
    assert sorted((r.row_off, r.col_off) for r in reads) == sorted((y, x) for y in rows for x in (0, 24, 48))
    assert all(wn is not None and wn.width == w and wn.height <= 512 for wn in writes)


def test_traced_peak_does_not_grow_with_height(tmp_path):
    p = Predictor(make_bundle(tmp_path, kernel=1, dynamic_hw=True, tile_size=64, tile_overlap=16, height=64,
                              width=64, classes=4))
    peaks = {}
    opts = PredictOptions(progress=False, batch=2)
    for h in (1024, 4096):
        write_tif(tmp_path / f"r{h}.tif", rgb(h, 256, seed=h), tiled=True, block=64)
    predict_raster(p, tmp_path / "r1024.tif", tmp_path / "o", opts)  # warm-up: ONNX Runtime's first allocations
    for h in (1024, 4096):
        tracemalloc.start()
        try:
            predict_raster(p, tmp_path / f"r{h}.tif", tmp_path / "o", opts)
            peaks[h] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    # What stays: the bounded queues (a few batches of tiles), one tile row of logits and
    # one block row of output. Measured about 2.5 MB for both heights.
    whole_logits = 4 * 4096 * 256 * 4  # a (K, H, W) float32 accumulator of the tall raster: 16 MiB
    assert peaks[4096] < whole_logits / 4, peaks
    print("traced peaks", peaks)
    assert peaks[4096] < 1.3 * peaks[1024], peaks  # 4x the area, about the same peak


def test_a_failing_read_stops_every_stage_and_leaves_no_file(tmp_path, monkeypatch):
    p = Predictor(make_bundle(tmp_path, kernel=1, dynamic_hw=True, tile_size=32, tile_overlap=8, height=32, width=32))
    write_tif(tmp_path / "a.tif", rgb(200, 200))
    real_read, calls = geotiff.read_window, []

    def flaky(src, idx, win):
        calls.append(win)
        if len(calls) == 20:
            raise OSError("disk went away")
        return real_read(src, idx, win)

    monkeypatch.setattr(geotiff, "read_window", flaky)
    with pytest.raises(OSError, match="disk went away"):
        predict_raster(p, tmp_path / "a.tif", tmp_path / "o", PredictOptions(progress=False, batch=3))
    assert list((tmp_path / "o").iterdir()) == []  # neither the map nor its temporary file
    assert not [t for t in threading.enumerate() if t.name.startswith("effseg-")]
