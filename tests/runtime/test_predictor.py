"""Predictor: tiled runs of static-size bundles against whole-image runs (tile=False) of
dynamic-size exports of the same net, output kinds, dtypes, errors, and writing PNGs."""
import itertools

import numpy as np
import pytest
from bundle_cases import MEAN, STD, make_bundle, ort_run

from effseg.runtime import Predictor, load_bundle
from effseg.runtime.tiling import reflect_index, tile_starts


def _image(h, w, c=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)


@pytest.mark.parametrize(("size", "tile", "overlap"), [(1, 8, 2), (8, 8, 2), (9, 8, 2), (45, 32, 8), (70, 32, 9),
                                                       (100, 17, 0)])
def test_tiles_cover_the_axis(size, tile, overlap):
    starts = tile_starts(size, tile, overlap)
    assert starts[0] == 0 and starts[-1] + tile >= size
    assert all(b - a == tile - overlap for a, b in itertools.pairwise(starts))
    assert len(starts) == 1 or starts[-1] < size - overlap  # no tile that only repeats its neighbour


def test_tiling_argument_errors():
    with pytest.raises(ValueError, match="overlap < tile"):
        tile_starts(10, 8, 8)
    np.testing.assert_array_equal(reflect_index(0, 6, 3), [0, 1, 2, 1, 0, 1])


def test_pointwise_net_tiled_equals_untiled(tmp_path):
    # 1x1 convs only: every pixel depends on itself alone, so tiling must change nothing.
    static = Predictor(make_bundle(tmp_path, name="s", kernel=1, height=16, width=16, tile_overlap=5))
    dynamic = Predictor(make_bundle(tmp_path, name="d", kernel=1, dynamic_hw=True, height=16, width=16), tile=False)
    img = _image(37, 53)
    want = dynamic.predict_logits(img)
    assert want.shape == (4, 37, 53)
    np.testing.assert_allclose(static.predict_logits(img), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(static.predict(img), dynamic.predict(img))
    # And the untiled run is the ONNX on the normalised image, padding cropped off.
    x = ((img.astype(np.float32) - np.float32(MEAN)) / np.float32(STD)).transpose(2, 0, 1)[None]
    direct = ort_run(dynamic.bundle.onnx_path, np.ascontiguousarray(x))[0]
    np.testing.assert_allclose(want, direct, rtol=1e-5, atol=1e-5)


def test_labels_output_tiled_keeps_centres_and_equals_untiled(tmp_path):
    # A 3x3 conv sees 1 pixel beyond itself, so only a tile's outermost pixels can be
    # wrong; labels blend as one-hot votes, and where a neighbour saw such a pixel from its
    # interior the cosine ramp gives it under 1 % of the vote. Both runs extend the
    # bottom/right by reflection by more than 1 pixel (45x70 -> 56x80 tiled, 64x96
    # whole), so labels match exactly.
    static = Predictor(make_bundle(tmp_path, name="s", output_kind="labels", height=32, width=32, tile_overlap=8))
    dynamic = Predictor(make_bundle(tmp_path, name="d", output_kind="labels", dynamic_hw=True, height=32, width=32),
                        tile=False)
    img = _image(45, 70, seed=3)
    got, want = static.predict(img), dynamic.predict(img)
    assert got.shape == (45, 70) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="outputs labels"):
        static.predict_logits(img)


def test_logits_tiled_3x3_close_to_untiled(tmp_path):
    # Blending mixes in (with little weight) the logits a tile computes at its own inner
    # edges (zero padding inside the image), so a 3x3 net is not exact there: logits agree
    # to 1e-5 on every row and column that is not an inner tile edge, and labels on >= 97%
    # of the pixels.
    static = Predictor(make_bundle(tmp_path, name="s", height=24, width=24, tile_overlap=8))
    dynamic = Predictor(make_bundle(tmp_path, name="d", dynamic_hw=True, height=24, width=24), tile=False)
    img = _image(41, 59, seed=4)
    got, want = static.predict_logits(img), dynamic.predict_logits(img)

    def clean(size):
        starts = tile_starts(size, 24, 8)
        edges = set(starts[1:]) | {s + 23 for s in starts[:-1]}
        return np.array([i not in edges for i in range(size)])

    keep = clean(41)[:, None] & clean(59)[None, :]
    np.testing.assert_allclose(got[:, keep], want[:, keep], rtol=1e-5, atol=1e-5)
    assert np.abs(got - want).max() > 1e-3  # the edges do differ: the check above has teeth
    assert (static.predict(img) == dynamic.predict(img)).mean() >= 0.97


def test_forced_tiling_of_a_dynamic_bundle(tmp_path):
    folder = make_bundle(tmp_path, kernel=1, dynamic_hw=True, height=16, width=16, tile_size=16, tile_overlap=4)
    img = _image(30, 35, seed=5)
    np.testing.assert_allclose(Predictor(folder, tile=True).predict_logits(img),
                               Predictor(folder, tile=False).predict_logits(img), rtol=1e-5, atol=1e-5)


def test_small_image_is_padded_into_one_tile(tmp_path):
    static = Predictor(make_bundle(tmp_path, name="s", kernel=1, height=16, width=16))
    dynamic = Predictor(make_bundle(tmp_path, name="d", kernel=1, dynamic_hw=True))
    img = _image(5, 11, seed=6)
    np.testing.assert_array_equal(static.predict(img), dynamic.predict(img))


def test_fp16_input_bundle(tmp_path):
    folder = make_bundle(tmp_path, name="h", fp16_input=True, kernel=1, height=16, width=16)
    assert load_bundle(folder).meta["input"]["dtype"] == "float16"
    ref = Predictor(make_bundle(tmp_path, name="f", kernel=1, height=16, width=16))
    img = _image(16, 16, seed=7)
    p = Predictor(folder)
    # fp16 rounding of the normalised input (~1e-3 relative) moves near-ties only.
    np.testing.assert_allclose(p.predict_logits(img), ref.predict_logits(img), rtol=1e-2, atol=1e-2)
    assert (p.predict(img) == ref.predict(img)).mean() >= 0.98


def test_four_channel_bundle_and_channel_errors(tmp_path):
    p = Predictor(make_bundle(tmp_path, channels=4, kernel=1))
    assert p.predict(_image(20, 20, c=4)).shape == (20, 20)
    with pytest.raises(ValueError, match="image has 3 channels, but the bundle's model takes 4"):
        p.predict(_image(20, 20, c=3))
    with pytest.raises(ValueError, match=r"image must be \(H, W, 4\)"):
        p.predict(np.zeros((20, 20), np.uint8))
    with pytest.raises(TypeError, match="image must be a numpy array"):
        p.predict([[0]])


def test_meta_channels_disagreeing_with_the_onnx(tmp_path):
    import json

    from effseg.runtime import BundleError

    folder = make_bundle(tmp_path)
    meta = json.loads((folder / "meta.json").read_text())
    meta["input"]["channels"] = 4
    meta["normalize"] = {"mean": [0.0] * 4, "std": [1.0] * 4}
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="model.onnx takes 3 channels, but meta.json says input.channels 4"):
        Predictor(folder)
    meta["input"]["channels"] = 3
    meta["normalize"] = {"mean": [0.0] * 3, "std": [1.0] * 3}
    meta["input"]["height"] = 32
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="model.onnx takes 16x16 images, but meta.json says input height x width 32x16"):
        Predictor(folder)


def test_colorize_and_its_errors(tmp_path):
    p = Predictor(make_bundle(tmp_path, classes=4))
    labels = np.array([[0, 1], [2, 3]], np.uint8)
    np.testing.assert_array_equal(p.colorize(labels), np.array(
        [[[255, 255, 255], [0, 0, 255]], [[0, 255, 255], [0, 255, 0]]], np.uint8))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        p.colorize(np.array([[4]]))
    with pytest.raises(ValueError, match="labels must be an"):
        p.colorize(np.zeros((2, 2, 1), np.int64))


def test_argument_errors(tmp_path):
    folder = make_bundle(tmp_path)
    with pytest.raises(ValueError, match="backend must be one of"):
        Predictor(folder, backend="cuda")
    with pytest.raises(ValueError, match="threads"):
        Predictor(folder, threads=0)
    with pytest.raises(ValueError, match="tile must be"):
        Predictor(folder, tile="yes")
    with pytest.raises(ValueError, match="tiling is off"):
        Predictor(folder, tile=False).predict(_image(17, 16))


def test_png_format_writes_label_and_colour_pngs(tmp_path):
    # Predictor.run became `effseg predict --format png` (effseg.predict.predict_files):
    # the same files, through the one tile engine.
    from PIL import Image

    from effseg.predict import PredictOptions, predict_files

    p = Predictor(make_bundle(tmp_path, kernel=1))
    src = tmp_path / "images"
    src.mkdir()
    imgs = {"a": _image(16, 16, seed=8), "b": _image(23, 19, seed=9)}
    for name, img in imgs.items():
        Image.fromarray(img).save(src / f"{name}.png")
    np.save(src / "a.npy", imgs["a"])  # same stem as a.png: must not overwrite it
    opts = PredictOptions(format="png", progress=False)
    run = predict_files(p, [src], tmp_path / "out", opts)
    assert not run.failed
    assert sorted(f.name for f in (tmp_path / "out").iterdir()) == sorted(
        ["a.npy_labels.png", "a.npy_color.png", "a.png_labels.png", "a.png_color.png", "b.png_labels.png",
         "b.png_color.png"])
    labels = np.asarray(Image.open(tmp_path / "out" / "b.png_labels.png"))
    np.testing.assert_array_equal(labels, p.predict(imgs["b"]))
    colour = np.asarray(Image.open(tmp_path / "out" / "b.png_color.png"))
    np.testing.assert_array_equal(colour, p.colorize(labels))
    single = predict_files(p, [src / "b.png"], tmp_path / "one", opts)
    assert [r.output.name for r in single.results] == ["b.png_labels.png"]
    assert sorted(f.name for f in (tmp_path / "one").iterdir()) == ["b.png_color.png", "b.png_labels.png"]
