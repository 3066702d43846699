"""What runs is what was hashed: a bundle file swapped after load_bundle's check never
reaches ONNX Runtime, a truncated model is a BundleError naming the file, and a model
whose output contradicts meta.json (kind, classes) or an absurd tile.overlap is refused."""
import json

import numpy as np
import onnx
import pytest
from bundle_cases import MEAN, STD, conv_net, make_bundle

from effseg.export.bundle import bundle_meta, write_bundle
from effseg.runtime import BundleError, Predictor, load_bundle
from effseg.runtime.bundle import check_effseg_version, validate_meta
from effseg.runtime.bundle_models import check_output


def _edit_meta(folder, fn):
    meta = json.loads((folder / "meta.json").read_text())
    fn(meta)
    (folder / "meta.json").write_text(json.dumps(meta))


def _external_bundle(tmp_path, seed=0):
    src = tmp_path / f"src{seed}"
    src.mkdir()
    model = onnx.load(str(conv_net(tmp_path / f"plain{seed}.onnx", height=16, width=16, seed=seed)))
    onnx.save_model(model, str(src / "net.onnx"), save_as_external_data=True, location="net.weights",
                    size_threshold=0)
    meta = bundle_meta(architecture="tinyconv", num_classes=4, input_shape=(3, 16, 16), mean=MEAN, std=STD)
    return write_bundle(tmp_path / f"b{seed}", src / "net.onnx", meta=meta)


def test_external_weights_swapped_after_the_check_are_not_run(tmp_path):
    folder = _external_bundle(tmp_path, seed=0)
    other = _external_bundle(tmp_path, seed=1)  # same layout, other weights
    bundle = load_bundle(folder)  # hashes checked here
    (folder / "net.weights").write_bytes((other / "net.weights").read_bytes())
    with pytest.raises(BundleError, match="net.weights does not match"):
        Predictor(bundle, backend="onnxruntime")


def test_session_is_built_from_the_hashed_bytes_not_a_path(tmp_path, monkeypatch):
    import onnxruntime as ort

    folder = _external_bundle(tmp_path)
    seen = []
    real = ort.InferenceSession

    def spy(model, *a, **kw):
        seen.append(model)
        return real(model, *a, **kw)

    monkeypatch.setattr(ort, "InferenceSession", spy)
    p = Predictor(folder, backend="onnxruntime")
    assert len(seen) == 1 and isinstance(seen[0], bytes)
    assert seen[0] == (folder / "model.onnx").read_bytes()
    img = np.random.default_rng(2).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    ref = Predictor(make_bundle(tmp_path, name="ref", height=16, width=16))
    np.testing.assert_array_equal(p.predict(img), ref.predict(img))


def test_truncated_model_with_a_matching_hash_is_a_bundle_error(tmp_path):
    folder = make_bundle(tmp_path)
    data = (folder / "model.onnx").read_bytes()
    (folder / "model.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match="model.onnx does not match"):
        load_bundle(folder)
    # Re-signed: the hash matches, ONNX Runtime cannot parse it; still an explained BundleError.
    import hashlib

    half = data[: len(data) // 2]
    _edit_meta(folder, lambda m: m["files"]["model.onnx"].update(sha256=hashlib.sha256(half).hexdigest(),
                                                                  bytes=len(half)))
    with pytest.raises(BundleError, match=r"bundle file model.onnx .* ONNX Runtime .* cannot load it"):
        Predictor(folder)


def test_output_kind_labels_on_a_logits_model_is_refused(tmp_path):
    folder = make_bundle(tmp_path)
    _edit_meta(folder, lambda m: m["output"].update(kind="labels"))
    with pytest.raises(BundleError, match=r"output.kind 'labels', but model.onnx's output 'logits' outputs "
                                          r"tensor\(float\)"):
        Predictor(folder)


def test_output_kind_logits_on_a_labels_model_is_refused(tmp_path):
    folder = make_bundle(tmp_path, output_kind="labels")
    _edit_meta(folder, lambda m: m["output"].update(kind="logits"))
    with pytest.raises(BundleError, match=r"output.kind 'logits', but model.onnx's output 'labels' outputs "
                                          r"tensor\(int64\)"):
        Predictor(folder)


def test_num_classes_disagreeing_with_the_model_is_refused(tmp_path):
    folder = make_bundle(tmp_path, classes=4)

    def more(m):
        m.update(num_classes=5, classes=m["classes"] + ["x"], palette=m["palette"] + [[1, 2, 3]])

    _edit_meta(folder, more)
    with pytest.raises(BundleError, match="num_classes 5, but model.onnx's output 'logits' outputs 4 classes"):
        Predictor(folder)


def test_actual_output_is_checked_at_run_time():
    # What a model with symbolic output dimensions can only show when it runs.
    with pytest.raises(BundleError, match="num_classes 4, but the model returned 5 classes"):
        check_output(np.zeros((1, 5, 8, 8), np.float32), "logits", 4, (8, 8))
    with pytest.raises(BundleError, match="output.kind 'logits'.* returned int64"):
        check_output(np.zeros((1, 4, 8, 8), np.int64), "logits", 4, (8, 8))
    with pytest.raises(BundleError, match="output.kind 'labels'.* returned float32"):
        check_output(np.zeros((1, 8, 8), np.float32), "labels", 4, (8, 8))
    with pytest.raises(BundleError, match=r"returned shape \(1, 8, 4\)"):
        check_output(np.zeros((1, 8, 4), np.int64), "labels", 4, (8, 8))
    with pytest.raises(BundleError, match="num_classes 4, but the model returned labels 6..6"):
        check_output(np.full((1, 1, 8, 8), 6, np.int64), "labels", 4, (8, 8))
    with pytest.raises(ValueError, match="NaN logits"):
        check_output(np.full((1, 4, 8, 8), np.nan, np.float32), "logits", 4, (8, 8))
    assert check_output(np.zeros((1, 1, 8, 8), np.int32), "labels", 4, (8, 8)).shape == (8, 8)


def test_tile_overlap_beyond_half_a_tile_is_refused(tmp_path):
    folder = make_bundle(tmp_path, height=128, width=128)
    _edit_meta(folder, lambda m: m["tile"].update(overlap=127))
    with pytest.raises(BundleError, match=r"'tile.overlap' must be at most half of tile.size \(128 // 2 = 64\)"):
        load_bundle(folder)
    _edit_meta(folder, lambda m: m["tile"].update(overlap=64))
    load_bundle(folder)
    # A static model whose short side is below tile.size: half of that side is the bound.
    wide = make_bundle(tmp_path, name="wide", height=16, width=64)
    _edit_meta(wide, lambda m: m["tile"].update(overlap=12))
    with pytest.raises(BundleError, match="'tile.overlap' must be at most half of the 16x64 tiles"):
        Predictor(wide)


@pytest.mark.parametrize("version", ["0.1.0", "0.1.0rc1", "0.1.0.dev3", "0.1.0-beta.2", "0.1.0+g1234", "0.1.12"])
def test_well_formed_versions(version):
    check_effseg_version(version, "0.1.0")


@pytest.mark.parametrize("version", ["0.1", "0.1.x", "0.1.0 junk", "v0.1.0", "0.1.0!", "", "1"])
def test_malformed_effseg_version_is_a_bundle_error_naming_the_field(tmp_path, version):
    folder = make_bundle(tmp_path)
    meta = json.loads((folder / "meta.json").read_text())
    meta["effseg_version"] = version
    with pytest.raises(BundleError, match="effseg_version"):
        validate_meta(meta)
        check_effseg_version(version)
