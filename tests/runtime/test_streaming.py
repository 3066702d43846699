"""Row-strip tiling: the same logits bit for bit as the whole-image accumulator, with
memory that grows with the image width only; the max_pixels limit on every reader."""
import tracemalloc

import numpy as np
import pytest
from bundle_cases import make_bundle
from PIL import Image

from effseg.runtime import Predictor, read_image
from effseg.runtime.tiling import pad_reflect, reflect_index, tiled_labels, tiled_logits


@pytest.mark.parametrize("size", [1, 2, 3, 5, 16])
def test_reflect_index_is_pad_reflect(size):
    row = np.arange(float(size)).reshape(1, 1, size)
    for width in range(size, 4 * size + 40):
        np.testing.assert_array_equal(reflect_index(0, width, size), pad_reflect(row, 1, width)[0, 0])


@pytest.mark.parametrize(("h", "w", "tile", "overlap", "kind"), [
    (41, 59, 24, 8, "logits"), (100, 37, 16, 5, "logits"), (7, 9, 16, 4, "logits"), (16, 16, 16, 4, "logits"),
    (45, 70, 32, 8, "labels"), (100, 37, 16, 5, "labels")])
def test_streamed_equals_whole_image_tiling(tmp_path, h, w, tile, overlap, kind):
    p = Predictor(make_bundle(tmp_path, height=tile, width=tile, tile_overlap=overlap, output_kind=kind))
    img = np.random.default_rng(h * w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    x = p._prep(img)
    if kind == "logits":
        want = tiled_logits(x, p._run_one, (tile, tile), overlap)
        np.testing.assert_array_equal(p.predict_logits(img), want)  # bit for bit
        np.testing.assert_array_equal(p.predict(img), want.argmax(0))
    else:
        np.testing.assert_array_equal(p.predict(img), tiled_labels(x, p._run_one, (tile, tile), overlap))


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
