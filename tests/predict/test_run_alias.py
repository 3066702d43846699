"""`effseg run` is an alias of `effseg predict` (--format png by default): one code path.
The same PNG gives the same class map through run, predict --format png, predict's
GeoTIFF and Predictor.predict; run takes predict's options; and run still segments
PNG/JPEG where neither torch nor rasterio can be imported."""
import numpy as np
import pytest
import rasterio
from bundle_cases import make_bundle
from no_torch import run_without_torch
from PIL import Image

from effseg.cli import main
from effseg.predict import PredictOptions, predict_files
from effseg.runtime import Predictor, TileOptions


def _img(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def conv3(tmp_path_factory):
    # A static 32x32 3x3-conv model on a 45x70 image: several blended tiles whose seams
    # differ from a whole-image pass, so two different tilers could not agree by chance.
    return make_bundle(tmp_path_factory.mktemp("b"), kernel=3, height=32, width=32, tile_overlap=8)


def test_run_predict_png_predict_tif_and_predictor_agree(tmp_path, conv3, capsys):
    img = _img(45, 70, seed=1)
    Image.fromarray(img).save(tmp_path / "scene.png")
    common = [str(conv3), str(tmp_path / "scene.png"), "--no-progress", "--threads", "1"]
    assert main(["run", *common, "--out", str(tmp_path / "run")]) == 0
    assert main(["predict", *common, "--out", str(tmp_path / "png"), "--format", "png"]) == 0
    assert main(["predict", *common, "--out", str(tmp_path / "tif")]) == 0
    out = capsys.readouterr().out
    assert "1 image(s) -> " in out and "1 raster(s) -> " in out
    ran = np.asarray(Image.open(tmp_path / "run" / "scene.png_labels.png"))
    assert ran.shape == (45, 70)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "png" / "scene.png_labels.png")), ran)
    with rasterio.open(tmp_path / "tif" / "scene.tif") as d:
        np.testing.assert_array_equal(d.read(1), ran)
    np.testing.assert_array_equal(Predictor(conv3).predict(img), ran)
    # The colour PNG is the palette of those labels.
    colour = np.asarray(Image.open(tmp_path / "run" / "scene.png_color.png"))
    np.testing.assert_array_equal(colour, Predictor(conv3).colorize(ran))


def test_run_takes_predicts_options(tmp_path, conv3):
    img = _img(45, 70, seed=2)
    Image.fromarray(img).save(tmp_path / "a.png")
    args = [str(conv3), str(tmp_path / "a.png"), "--no-progress", "--tta", "flip", "--batch", "3", "--blend", "linear"]
    assert main(["run", *args, "--out", str(tmp_path / "r")]) == 0
    got = np.asarray(Image.open(tmp_path / "r" / "a.png_labels.png"))
    want = Predictor(conv3).predict(img, options=TileOptions(tta="flip", batch=3, blend="linear"))
    np.testing.assert_array_equal(got, want)
    assert (want != Predictor(conv3).predict(img)).any()  # the options did change something
    # --format tif turns the alias into plain predict.
    assert main(["run", *args, "--out", str(tmp_path / "t"), "--format", "tif"]) == 0
    with rasterio.open(tmp_path / "t" / "a.tif") as d:
        np.testing.assert_array_equal(d.read(1), want)


def test_help_says_alias(capsys):
    with pytest.raises(SystemExit) as e:
        main(["run", "--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "An alias of `effseg predict` whose --format defaults to png" in text
    for flag in ("--max-pixels", "--nonfinite", "--bands", "--replicate-grey", "--tta", "--tile", "--format"):
        assert flag in text
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "alias of `effseg predict --format png`" in " ".join(capsys.readouterr().out.split())


def test_format_and_max_pixels_errors(tmp_path, conv3, capsys):
    Image.fromarray(_img(40, 50)).save(tmp_path / "a.png")
    base = [str(conv3), str(tmp_path / "a.png"), "--out", str(tmp_path / "o"), "--no-progress"]
    assert main(["run", *base, "--probs"]) == 2
    assert "effseg run: error: --probs write GeoTIFF / vector files: use --format tif" in capsys.readouterr().err
    assert main(["predict", *base, "--format", "png", "--cog", "--vector", "geojson"]) == 2
    assert "--cog, --vector write GeoTIFF / vector files" in capsys.readouterr().err
    assert main(["run", *base, "--max-pixels", "1000"]) == 1
    err = capsys.readouterr().err
    assert "effseg run: error: " in err and "2,000 pixels, more than max_pixels 1,000" in err
    assert main(["run", *base, "--max-pixels", "-3"]) == 2
    assert "max_pixels must be a positive integer or None, got -3" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", *base, "--format", "jpg"])
    assert "invalid choice: 'jpg'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--format must be one of tif, png, got 'jpg'"):
        PredictOptions(format="jpg").check()
    with pytest.raises(ValueError, match="on_error must be one of report, raise"):
        predict_files(Predictor(conv3), [tmp_path / "a.png"], tmp_path / "o", PredictOptions(format="png"),
                      on_error="ignore")


_NO_RASTERIO = """
class _NoRasterio:
    def find_spec(self, name, path=None, target=None):
        if name == "rasterio" or name.startswith("rasterio."):
            raise ImportError("rasterio is blocked for this test")
sys.meta_path.insert(0, _NoRasterio())
from effseg.cli import main
code = main({args!r})
loaded = [m for m in sys.modules if m.split(".")[0] in ("torch", "rasterio")]
assert not loaded, loaded
sys.exit(code)
"""


def test_run_segments_png_and_jpeg_without_torch_or_rasterio(tmp_path):
    bundle = make_bundle(tmp_path, kernel=1, height=16, width=16)
    src = tmp_path / "imgs"
    src.mkdir()
    imgs = {"a.png": _img(21, 30, seed=3), "b.jpg": _img(16, 16, seed=4)}
    for name, img in imgs.items():
        Image.fromarray(img).save(src / name)
    r = run_without_torch(_NO_RASTERIO.format(args=["run", str(bundle), str(src), "--out", str(tmp_path / "o"),
                                                    "--no-progress"]))
    assert r.returncode == 0, r.stderr
    assert "2 image(s)" in r.stdout
    p = Predictor(bundle)
    for name in imgs:
        pixels = np.asarray(Image.open(src / name))  # the decoded JPEG, not the array that was saved
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "o" / f"{name}_labels.png")),
                                      p.predict(pixels))
    # GeoTIFF output does need rasterio: the error says how to get it.
    r = run_without_torch(_NO_RASTERIO.format(args=["run", str(bundle), str(src / "a.png"), "--out",
                                                    str(tmp_path / "t"), "--format", "tif", "--no-progress"]))
    assert r.returncode == 1 and "pip install 'effseg[geo]'" in r.stderr
