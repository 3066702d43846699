"""16-bit and multi-band images: read at native precision, scaled only as the bundle
says, bands chosen explicitly; a band count or bit depth that does not fit is refused
with the reason, never clipped, cut or dropped."""
import struct
import zlib

import numpy as np
import pytest
from bundle_cases import make_bundle
from PIL import Image

from effseg.runtime import Predictor, read_image


def _rgb8(h=24, w=28, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _png16_rgb(path, img):
    """A 16-bit RGB PNG written by hand: Pillow cannot write one."""
    h, w, _ = img.shape
    raw = b"".join(b"\x00" + img[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_16bit_grey_into_a_3band_model_is_refused_not_clipped(tmp_path):
    grey = (np.arange(24 * 28).reshape(24, 28) * 97 % 65536).astype(np.uint16)
    Image.fromarray(grey).save(tmp_path / "g16.png")
    assert read_image(tmp_path / "g16.png", 1).dtype == np.uint16
    np.testing.assert_array_equal(read_image(tmp_path / "g16.png", 1)[..., 0], grey)  # not clipped at 255
    p8 = Predictor(make_bundle(tmp_path, kernel=1))
    with pytest.raises(ValueError, match=r"1 band \(grey\), but the model takes 3: pass --replicate-grey"):
        p8.predict_file(tmp_path / "g16.png")
    p8.replicate_grey = True
    with pytest.raises(ValueError, match="holds uint16 pixels, .* input.pixel_dtype 'uint8'"):
        p8.predict_file(tmp_path / "g16.png")


def test_16bit_grey_with_a_16bit_bundle_and_replication(tmp_path):
    grey8 = _rgb8()[..., 0]
    Image.fromarray(grey8.astype(np.uint16) * 257).save(tmp_path / "g16.png")
    p16 = Predictor(make_bundle(tmp_path, name="u16", kernel=1, pixel_dtype="uint16", stats_scale=257.0), replicate_grey=True)
    p8 = Predictor(make_bundle(tmp_path, name="u8", kernel=1))
    want = p8.predict(np.repeat(grey8[..., None], 3, axis=2))
    got = p16.predict_file(tmp_path / "g16.png")
    assert (got == want).mean() > 0.999  # float rounding of x*257 against 257*mean may flip an exact tie


def test_16bit_rgb(tmp_path):
    img8 = _rgb8(seed=1)
    img16 = img8.astype(np.uint16) * 257
    np.save(tmp_path / "rgb16.npy", img16)
    p16 = Predictor(make_bundle(tmp_path, name="u16", kernel=1, pixel_dtype="uint16", stats_scale=257.0))
    p8 = Predictor(make_bundle(tmp_path, name="u8", kernel=1))
    got = p16.predict_file(tmp_path / "rgb16.npy")
    assert (got == p8.predict(img8)).mean() > 0.999
    np.testing.assert_allclose(p16.predict_logits(img16), p8.predict_logits(img8), rtol=1e-4, atol=1e-4)
    # input.scale instead of native statistics: 8-bit statistics, pixels / 257.
    ps = Predictor(make_bundle(tmp_path, name="sc", kernel=1, pixel_dtype="uint16", scale=1 / 257))
    np.testing.assert_allclose(ps.predict_logits(img16), p8.predict_logits(img8), rtol=1e-4, atol=1e-4)
    # Pillow would read a 16-bit RGB PNG cut to its high byte: refused, saying why.
    _png16_rgb(tmp_path / "rgb16.png", img16)
    with pytest.raises(ValueError, match="16-bit RGB, which Pillow can only read cut to 8 bits"):
        p16.predict_file(tmp_path / "rgb16.png")
    # An 8-bit bundle never sees 16-bit pixels.
    with pytest.raises(ValueError, match="holds uint16 pixels"):
        p8.predict(img16)


def test_four_bands_into_three_need_explicit_bands(tmp_path):
    img4 = np.random.default_rng(3).integers(0, 256, (20, 22, 4), dtype=np.uint8)
    np.save(tmp_path / "four.npy", np.transpose(img4, (2, 0, 1)))  # bands first
    p = Predictor(make_bundle(tmp_path, kernel=1))
    with pytest.raises(ValueError, match=r"4 bands, but the model takes 3: choose 3 with --bands"):
        p.predict_file(tmp_path / "four.npy")
    p.bands = (1, 2, 3)
    np.testing.assert_array_equal(p.predict_file(tmp_path / "four.npy"), p.predict(img4[..., :3]))
    p.bands = (4, 2, 1)
    np.testing.assert_array_equal(p.predict_file(tmp_path / "four.npy"), p.predict(img4[..., [3, 1, 0]]))
    p.bands = (1, 5, 2)
    with pytest.raises(ValueError, match="asks for band 5, but image four.npy has 4 band"):
        p.predict_file(tmp_path / "four.npy")
    with pytest.raises(ValueError, match="bands must be"):
        Predictor(make_bundle(tmp_path, name="b2"), bands="1,x")
