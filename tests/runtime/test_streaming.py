"""The tile engine streams row strips: the same logits bit for bit as a whole-image
accumulator of the same blended tiles, with memory that grows with the image width only;
the max_pixels limit on every reader."""
import tracemalloc

import numpy as np
import pytest
from bundle_cases import make_bundle
from PIL import Image

from effseg.runtime import Predictor, read_image
from effseg.runtime.blend import axis_weights
from effseg.runtime.tiling import reflect_index


@pytest.mark.parametrize("size", [1, 2, 3, 5, 16])
def test_reflect_index_is_numpy_reflect_padding(size):
    row = np.arange(float(size))
    for width in range(size, 4 * size + 40):
        want = np.pad(row, (0, width - size), mode="reflect") if size > 1 else np.zeros(width)
        np.testing.assert_array_equal(reflect_index(0, width, size), want)


def _whole_image_blend(p, img, tile, overlap, kind):
    """The reference: every tile of the reflect-padded image at once into one (K, H', W')
    accumulator with the cosine weights, in the engine's tile order; labels as one-hot votes."""
    h, w = img.shape[:2]
    k = p.bundle.num_classes
    ys, ry = axis_weights(h, tile, overlap)
    xs, rx = axis_weights(w, tile, overlap)
    hp, wp = ys[-1] + tile, xs[-1] + tile
    x = p.prepare(img[reflect_index(0, hp, h)][:, reflect_index(0, wp, w)])
    acc = np.zeros((k, hp, wp), np.float32)
    sy, sx = np.zeros(hp, np.float64), np.zeros(wp, np.float64)
    for y, wy in zip(ys, ry):
        sy[y:y + tile] += wy
    for x0, wx in zip(xs, rx):
        sx[x0:x0 + tile] += wx
    for y, wy in zip(ys, ry):
        for x0, wx in zip(xs, rx):
            out = p.run_batch(x[None, :, y:y + tile, x0:x0 + tile])[0]
            if kind == "labels":
                out = (out[None] == np.arange(k)[:, None, None]).astype(np.float32)
            acc[:, y:y + tile, x0:x0 + tile] += out * (wy[:, None] * wx[None, :])
    return acc[:, :h, :w] / (sy[:h, None].astype(np.float32) * sx[None, :w].astype(np.float32))


@pytest.mark.parametrize(("h", "w", "tile", "overlap", "kind"), [
    (41, 59, 24, 8, "logits"), (100, 37, 16, 5, "logits"), (7, 9, 16, 4, "logits"), (16, 16, 16, 4, "logits"),
    (45, 70, 32, 8, "labels"), (100, 37, 16, 5, "labels")])
def test_streamed_equals_whole_image_blending(tmp_path, h, w, tile, overlap, kind):
    p = Predictor(make_bundle(tmp_path, height=tile, width=tile, tile_overlap=overlap, output_kind=kind))
    img = np.random.default_rng(h * w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    want = _whole_image_blend(p, img, tile, overlap, kind)
    if kind == "logits":
        np.testing.assert_array_equal(p.predict_logits(img), want)  # bit for bit
    np.testing.assert_array_equal(p.predict(img), want.argmax(0))


def test_prediction_memory_does_not_grow_with_image_area(tmp_path):
    p = Predictor(make_bundle(tmp_path, kernel=1, classes=4, height=16, width=16, tile_overlap=4))
    h, w = 4096, 64
    img = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    p.predict(img[:64])  # ONNX Runtime's first-run allocations are not the subject
    full_logits = 4 * h * w * 4  # a float32 (K, H, W) accumulator: 4 MiB
    tracemalloc.start()
    try:
        labels = p.predict(img)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert labels.shape == (h, w)
    # The (H, W) uint8 result (256 KiB) plus a few 16-row strips; the whole-image
    # accumulator or the normalised float copy of the image (3 MiB) would be far above.
    assert peak < full_logits / 4, f"peak traced memory {peak:,} bytes"


def test_npy_is_memory_mapped_and_max_pixels_applies_everywhere(tmp_path):
    img = np.zeros((30, 40, 3), np.uint8)
    np.save(tmp_path / "a.npy", img)
    Image.fromarray(img).save(tmp_path / "a.png")
    assert isinstance(read_image(tmp_path / "a.npy").base, np.memmap) or isinstance(read_image(tmp_path / "a.npy"),
                                                                                     np.memmap)
    for name in ("a.npy", "a.png"):
        with pytest.raises(ValueError, match=r"40x30 = 1,200 pixels, more than max_pixels 1,000; .*--max-pixels"):
            read_image(tmp_path / name, max_pixels=1000)
        assert read_image(tmp_path / name, max_pixels=1200).shape == (30, 40, 3)
    p = Predictor(make_bundle(tmp_path, kernel=1), max_pixels=1000)
    with pytest.raises(ValueError, match="max_pixels"):
        p.predict_file(tmp_path / "a.png")
    with pytest.raises(ValueError, match="max_pixels must be a positive integer"):
        Predictor(make_bundle(tmp_path, name="b2"), max_pixels=0)
