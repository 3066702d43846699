"""effseg.runtime.images: reading and normalising without torch."""
import numpy as np
import pytest

from effseg.runtime import list_images, normalize, read_image


def test_png_round_trip_and_normalize(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (13, 17, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "a.png")
    np.save(tmp_path / "b.npy", np.transpose(img, (2, 0, 1)))
    (tmp_path / "notes.txt").write_text("not an image")
    files = list_images(tmp_path)
    assert [f.name for f in files] == ["a.png", "b.npy"]
    for f in files:
        np.testing.assert_array_equal(read_image(f), img)
    x = normalize(img, mean=(10, 20, 30), std=(2, 4, 8))
    assert x.shape == (3, 13, 17) and x.dtype == np.float32
    np.testing.assert_allclose(x[1], (img[..., 1].astype(np.float32) - 20) / 4)


def test_errors_name_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither an image file nor a folder"):
        list_images(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="holds no images"):
        list_images(tmp_path)
    np.save(tmp_path / "bad.npy", np.zeros((4, 5, 2), np.uint8))
    with pytest.raises(ValueError, match="has 2 bands, but the model takes 3"):
        read_image(tmp_path / "bad.npy")
    with pytest.raises(ValueError, match="mean and std"):
        normalize(np.zeros((2, 2, 3)), mean=(1, 2), std=(1, 1, 1))
    with pytest.raises(ValueError, match="std must be positive"):
        normalize(np.zeros((2, 2, 3)), std=(1, 0, 1))
