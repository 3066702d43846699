"""The one tile engine's plan and reader: dynamic tiles cut down to small images (one
pass, as the runtime's old whole-image path), tile=True/False, d4's square tiles,
reflected reads of odd shapes, option errors, and errors raised inside a stage."""
import threading

import numpy as np
import pytest
from bundle_cases import make_bundle, ort_run

from effseg.runtime import Predictor, TileOptions
from effseg.runtime.tiled import ArraySource, plan_tiles


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("b")
    return {"dyn": make_bundle(tmp, "dyn", kernel=3, dynamic_hw=True, height=64, width=64, tile_size=64,
                               tile_overlap=16),
            "static": make_bundle(tmp, "st", kernel=3, height=32, width=32, tile_overlap=8)}


def test_plan_cuts_dynamic_tiles_down_to_the_image(bundles):
    p = Predictor(bundles["dyn"])
    assert plan_tiles(p, 45, 70, TileOptions()) == ((64, 64), (16, 16))
    assert plan_tiles(p, 20, 70, TileOptions()) == ((32, 64), (16, 16))  # one tile row: rows cut to 32
    assert plan_tiles(p, 20, 33, TileOptions()) == ((32, 64), (16, 16))
    assert plan_tiles(p, 5, 7, TileOptions()) == ((32, 32), (16, 16))
    assert plan_tiles(p, 20, 70, TileOptions(tta="d4")) == ((64, 64), (16, 16))  # rotations: square
    assert plan_tiles(p, 300, 70, TileOptions(tile=128, overlap=40)) == ((128, 96), (40, 40))
    assert plan_tiles(Predictor(bundles["dyn"], tile=True), 20, 33, TileOptions()) == ((64, 64), (16, 16))
    assert plan_tiles(Predictor(bundles["dyn"], tile=False), 200, 33, TileOptions()) == ((224, 64), (16, 16))
    s = Predictor(bundles["static"])
    assert plan_tiles(s, 5, 700, TileOptions()) == ((32, 32), (8, 8))
    with pytest.raises(ValueError, match="image is 5x700, but the model takes 32x32 and tiling is off"):
        plan_tiles(Predictor(bundles["static"], tile=False), 5, 700, TileOptions())


@pytest.mark.parametrize(("h", "w"), [(45, 50), (1, 9), (33, 1), (64, 64)])
def test_an_image_within_one_tile_is_one_pass_over_itself(bundles, h, w):
    # What the runtime did before the engine was shared: reflect-pad to a multiple of 32
    # and run once. Bit for bit, with a 3x3 conv whose borders would show any other padding.
    p = Predictor(bundles["dyn"])
    img = np.random.default_rng(h + w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    ph, pw = -(-h // 32) * 32, -(-w // 32) * 32
    # numpy's reflect needs 2 pixels; a 1-pixel axis repeats its pixel.
    img_p = np.pad(img, ((0, ph - h), (0, 0), (0, 0)), mode="reflect" if h > 1 else "edge")
    x = p.prepare(np.pad(img_p, ((0, 0), (0, pw - w), (0, 0)), mode="reflect" if w > 1 else "edge"))
    want = ort_run(p.bundle.onnx_path, x[None])[0][:, :h, :w]
    np.testing.assert_array_equal(p.predict_logits(img), want)
    np.testing.assert_array_equal(p.predict(img), want.argmax(0))


@pytest.mark.parametrize(("h", "w", "y", "x", "th", "tw"), [(7, 9, 0, 0, 16, 16), (1, 5, 0, 3, 4, 4),
                                                            (30, 40, 24, 32, 16, 16), (30, 40, 8, 8, 8, 8)])
def test_array_source_reads_reflected_tiles(tmp_path, h, w, y, x, th, tw):
    img = np.arange(h * w * 2, dtype=np.float32).reshape(h, w, 2)
    np.save(tmp_path / "a.npy", img)
    mask = np.zeros((h, w), bool)
    mask[h // 2:, : w // 3] = True

    def padded(a):
        """np.pad's reflection (a 1-pixel axis repeats) out to the tile's far corner."""
        for axis, need in ((0, y + th), (1, x + tw)):
            pad = [(0, 0)] * a.ndim
            pad[axis] = (0, max(0, need - a.shape[axis]))
            a = np.pad(a, pad, mode="reflect" if a.shape[axis] > 1 else "edge")
        return a[y:y + th, x:x + tw]

    for src in (img, np.load(tmp_path / "a.npy", mmap_mode="r")):
        px, valid = ArraySource(src, mask).read_tile(y, x, th, tw)
        np.testing.assert_array_equal(px, padded(img))
        np.testing.assert_array_equal(valid, ~padded(mask))
    assert ArraySource(img).read_tile(y, x, th, tw)[1] is None


def test_tile_option_errors(bundles):
    p = Predictor(bundles["static"])
    img = np.zeros((40, 40, 3), np.uint8)
    for opts, msg in ((TileOptions(batch=0), "--batch must be a positive integer"),
                      (TileOptions(tta="d8"), "--tta must be one of none, flip, d4, got 'd8'"),
                      (TileOptions(blend="gauss"), "--blend must be one of linear, cosine, got .gauss."),
                      (TileOptions(overlap=-1), "--overlap must be an integer >= 0"),
                      (TileOptions(tile=True), "--tile must be an integer >= 1"),
                      (TileOptions(prefetch=0), "prefetch must be a positive integer"),
                      (TileOptions(tile=64), "--tile 64: this bundle's model takes only 32x32 tiles"),
                      (TileOptions(overlap=17), r"--overlap must be between 0 and half the 32x32 tile \(16\)")):
        with pytest.raises(ValueError, match=msg):
            p.predict(img, options=opts)


def test_a_failing_model_call_stops_the_stages(bundles, monkeypatch):
    p = Predictor(bundles["static"])
    calls = []

    def broken(x):
        calls.append(len(x))
        if len(calls) == 3:
            raise RuntimeError("model fell over")
        return Predictor.run_batch(p, x)

    monkeypatch.setattr(p, "run_batch", broken)
    with pytest.raises(RuntimeError, match="model fell over"):
        p.predict(np.zeros((200, 200, 3), np.uint8), options=TileOptions(batch=2))
    assert len(calls) == 3
    assert not [t for t in threading.enumerate() if t.name.startswith("effseg-")]


def _array_run(p, img, opts, rows=None, calls=None):
    """run_tiles over an in-memory image: {tile row: (r0, logits rows)} emitted, and the
    batches the model was called with (as lists of their (N, C, h, w) shapes' N)."""
    from effseg.runtime.blend import RowBlender
    from effseg.runtime.tiled import run_tiles, tile_reader

    h, w = img.shape[:2]
    blender = RowBlender(h, w, *plan_tiles(p, h, w, opts), p.bundle.num_classes, opts.blend)
    out = {}

    def emit(i):
        out[i] = (blender.row_span(i)[0], blender.blended(i).copy())

    def run_batch(x):
        # A batch-coupled answer (as batch-dependent kernels give): any regrouping shows.
        if calls is not None:
            calls.append(len(x))
        y = p.run_batch(x)
        return y + np.float32(x.mean()) * np.arange(y.shape[1], dtype=np.float32)[:, None, None]

    n = run_tiles(blender, tile_reader(p, ArraySource(img), blender), run_batch, emit,
                  classes=p.bundle.num_classes, batch=opts.batch, tta=opts.tta, rows=rows)
    return out, n, len(blender.ys), len(blender.xs)


@pytest.mark.parametrize("batch", [1, 3, 5])
def test_a_row_range_gives_the_whole_runs_rows_bit_for_bit(bundles, batch):
    p = Predictor(bundles["static"])
    img = np.random.default_rng(batch).integers(0, 256, (130, 75, 3), dtype=np.uint8)
    opts = TileOptions(batch=batch)
    whole, n, n_rows, n_cols = _array_run(p, img, opts)
    assert n == n_rows * n_cols and sorted(whole) == list(range(n_rows)) and n_rows >= 5
    for a, b in [(0, 1), (1, 3), (2, n_rows), (n_rows - 1, n_rows), (0, n_rows)]:
        calls = []
        part, n, _, _ = _array_run(p, img, opts, rows=(a, b), calls=calls)
        assert sorted(part) == list(range(a, b))  # the halo row above a is blended, not emitted
        for i in range(a, b):
            assert part[i][0] == whole[i][0]
            np.testing.assert_array_equal(part[i][1], whole[i][1])
        # Whole batches of the whole run: aligned at multiples of batch, cut only at the end.
        assert sum(calls) == n and all(c == batch for c in calls[:-1])
        lo = max(a - 1, 0) * n_cols
        assert n <= (b * n_cols - lo) + 2 * (batch - 1)


def test_row_range_errors(bundles):
    from effseg.runtime.blend import RowBlender
    from effseg.runtime.tiled import row_range_plan

    blender = RowBlender(100, 40, (32, 32), 8, 4)
    assert len(blender.ys) == 4 and len(blender.xs) == 2
    assert row_range_plan(blender, None, 3) == (0, 8, 0, 8)
    assert row_range_plan(blender, (2, 3), 3) == (0, 6, 2, 6)  # halo row 1; batches [0, 3) and [3, 6)
    for bad in [(2, 2), (-1, 2), (3, 5)]:
        with pytest.raises(ValueError, match=r"tile rows \[.*\) are not within the raster's 4 tile rows"):
            row_range_plan(blender, bad, 3)
