"""`effseg run` on a folder: outputs never collide, one bad file is one error line, the
rest are still written, and the exit status says something failed."""
import numpy as np
from bundle_cases import make_bundle
from no_torch import run_without_torch
from PIL import Image

from effseg.predict import PredictOptions, predict_files
from effseg.runtime import Predictor

_MAIN = """
from effseg.cli import main
sys.exit(main({args!r}))
"""


def _img(seed, h=16, w=18):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_names_that_used_to_collide_get_their_own_outputs(tmp_path):
    p = Predictor(make_bundle(tmp_path, kernel=1))
    src = tmp_path / "imgs"
    src.mkdir()
    imgs = {"a.png": _img(1), "a.tif": _img(2), "a_png.bmp": _img(3)}
    for name, img in imgs.items():
        Image.fromarray(img).save(src / name)
    result = predict_files(p, [src], tmp_path / "out", PredictOptions(format="png", progress=False))
    assert len(result.results) == 3 and not result.failed and len(list((tmp_path / "out").iterdir())) == 6
    for name, img in imgs.items():
        got = np.asarray(Image.open(tmp_path / "out" / f"{name}_labels.png"))
        np.testing.assert_array_equal(got, p.predict(img))


def test_bad_files_are_reported_and_the_rest_is_processed(tmp_path):
    bundle = make_bundle(tmp_path, kernel=1)
    src = tmp_path / "imgs"
    src.mkdir()
    Image.fromarray(_img(1)).save(src / "good1.png")
    Image.fromarray(_img(2)).save(src / "good2.png")
    (src / "empty.png").write_bytes(b"")
    (src / "corrupt.png").write_bytes((src / "good1.png").read_bytes()[:40])
    np.save(src / "wrong.npy", np.zeros((8, 8, 5), np.uint8))
    out = tmp_path / "out"
    r = run_without_torch(_MAIN.format(args=["run", str(bundle), str(src), "--out", str(out), "--no-progress"]))
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("effseg run: error:")]
    assert len(lines) == 3
    for name in ("empty.png", "corrupt.png", "wrong.npy"):
        assert sum(name in ln for ln in lines) == 1
    assert "2 image(s)" in r.stdout and "3 failed" in r.stdout
    assert sorted(f.name for f in out.iterdir()) == ["good1.png_color.png", "good1.png_labels.png",
                                                     "good2.png_color.png", "good2.png_labels.png"]


def test_truncated_model_is_a_clear_error_naming_the_file(tmp_path):
    bundle = make_bundle(tmp_path)
    Image.fromarray(_img(1)).save(tmp_path / "one.png")
    data = (bundle / "model.onnx").read_bytes()
    (bundle / "model.onnx").write_bytes(data[:100])
    r = run_without_torch(_MAIN.format(args=["run", str(bundle), str(tmp_path / "one.png"), "--out",
                                             str(tmp_path / "o"), "--no-progress"]))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "effseg run: error: bundle file model.onnx does not match meta.json" in r.stderr
