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
