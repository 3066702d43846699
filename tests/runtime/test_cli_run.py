"""`effseg run` on a folder, in a subprocess where torch cannot be imported."""
import importlib.util

import numpy as np
from bundle_cases import make_bundle
from no_torch import run_without_torch

from effseg.runtime import Predictor

_MAIN = """
from effseg.cli import main
code = main({args!r})
assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules), "torch was loaded"
sys.exit(code)
"""


def test_effseg_run_on_a_folder_without_torch(tmp_path):
    from PIL import Image

    bundle = make_bundle(tmp_path, kernel=1, height=16, width=16)
    src = tmp_path / "imgs"
    src.mkdir()
    rng = np.random.default_rng(0)
    imgs = {"tile_a": rng.integers(0, 256, (16, 16, 3), dtype=np.uint8),
            "tile_b": rng.integers(0, 256, (21, 30, 3), dtype=np.uint8)}
    for name, img in imgs.items():
        Image.fromarray(img).save(src / f"{name}.png")
    out = tmp_path / "out"
    r = run_without_torch(_MAIN.format(args=["run", str(bundle), str(src), "--out", str(out), "--threads", "1",
                                             "--no-progress"]))
    assert r.returncode == 0, r.stderr
    assert "2 image(s)" in r.stdout and "onnxruntime" in r.stdout
    assert sorted(p.name for p in out.iterdir()) == ["tile_a.png_color.png", "tile_a.png_labels.png",
                                                     "tile_b.png_color.png", "tile_b.png_labels.png"]
    p = Predictor(bundle)
    for name, img in imgs.items():
        np.testing.assert_array_equal(np.asarray(Image.open(out / f"{name}.png_labels.png")), p.predict(img))


def test_effseg_run_progress_and_errors_without_torch(tmp_path):
    from PIL import Image

    bundle = make_bundle(tmp_path, kernel=1)
    img = tmp_path / "one.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(img)
    r = run_without_torch(_MAIN.format(args=["run", str(bundle), str(img), "--out", str(tmp_path / "o")]))
    assert r.returncode == 0, r.stderr
    # effseg predict's progress: a tiles bar on stderr (tqdm) and one line per image on stdout.
    assert "one.png -> " in r.stdout and "one.png_labels.png" in r.stdout
    assert "tile/s" in r.stderr or importlib.util.find_spec("tqdm") is None
    (bundle / "model.onnx").write_bytes(b"tampered")
    r = run_without_torch(_MAIN.format(args=["run", str(bundle), str(img), "--out", str(tmp_path / "o")]))
    assert r.returncode == 2
    assert "effseg run: error: bundle file model.onnx" in r.stderr
