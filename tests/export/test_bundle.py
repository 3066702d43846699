"""Deployment bundles: write, load, verify; every kind of corruption is a BundleError
that names what is wrong, never a run."""
import json
import warnings

import numpy as np
import pytest
from bundle_cases import MEAN, STD, make_bundle, ort_run

from effseg.export.bundle import (
    ISPRS_PALETTE,
    bundle_meta,
    default_palette,
    write_bundle,
)
from effseg.runtime import BundleError, Predictor, load_bundle
from effseg.runtime.bundle import check_effseg_version, sha256_file
from effseg.runtime.predictor import engine_mismatch


def _edit_meta(folder, fn):
    meta = json.loads((folder / "meta.json").read_text())
    fn(meta)
    (folder / "meta.json").write_text(json.dumps(meta))


def test_round_trip_matches_onnxruntime_on_the_normalised_image(tmp_path):
    folder = make_bundle(tmp_path, classes=4, height=16, width=24)
    b = load_bundle(folder)
    meta = b.meta
    assert meta["format"] == "effseg-bundle" and meta["format_version"] == 1
    assert meta["input"] == {"name": "input", "channels": 3, "height": 16, "width": 24, "dtype": "float32",
                             "dynamic_batch": False, "dynamic_hw": False}
    assert meta["classes"] == ["class_0", "class_1", "class_2", "class_3"]
    assert meta["palette"] == [list(c) for c in ISPRS_PALETTE[:4]]
    assert meta["tile"] == {"size": 24, "overlap": 6}
    entry = meta["files"]["model.onnx"]
    assert entry["sha256"] == sha256_file(folder / "model.onnx")
    assert entry["bytes"] == (folder / "model.onnx").stat().st_size
    assert meta["created"].endswith("Z")

    img = np.random.default_rng(1).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    x = ((img.astype(np.float32) - np.float32(MEAN)) / np.float32(STD)).transpose(2, 0, 1)[None]
    want = ort_run(folder / "model.onnx", np.ascontiguousarray(x))[0]
    p = Predictor(folder, backend="onnxruntime", threads=1)
    assert p.backend == "onnxruntime"
    np.testing.assert_allclose(p.predict_logits(img), want, rtol=1e-5, atol=1e-5)
    labels = p.predict(img)
    assert labels.dtype == np.uint8 and labels.shape == (16, 24)
    np.testing.assert_array_equal(labels, want.argmax(0))


def test_default_palette_is_isprs_for_six_classes_and_distinct_beyond():
    assert default_palette(6) == [list(c) for c in ISPRS_PALETTE]
    assert default_palette(6)[:2] == [[255, 255, 255], [0, 0, 255]]  # impervious white, building blue
    many = default_palette(262)
    assert len({tuple(c) for c in many}) == 262
    assert all(0 <= v <= 255 for c in many for v in c)


def test_tampered_onnx_byte_is_refused_with_both_hashes(tmp_path):
    folder = make_bundle(tmp_path)
    expected = load_bundle(folder).meta["files"]["model.onnx"]["sha256"]
    data = bytearray((folder / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0x01
    (folder / "model.onnx").write_bytes(bytes(data))
    actual = sha256_file(folder / "model.onnx")
    with pytest.raises(BundleError, match="model.onnx") as info:
        load_bundle(folder)
    assert expected in str(info.value) and actual in str(info.value)
    with pytest.raises(BundleError, match="refusing to run"):
        Predictor(folder)


def test_file_changed_after_loading_is_not_run(tmp_path):
    folder = make_bundle(tmp_path)
    bundle = load_bundle(folder)
    data = bytearray((folder / "model.onnx").read_bytes())
    data[-1] ^= 0xFF
    (folder / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="model.onnx does not match"):
        Predictor(bundle, backend="onnxruntime")


def test_missing_file(tmp_path):
    folder = make_bundle(tmp_path)
    (folder / "model.onnx").unlink()
    with pytest.raises(BundleError, match="model.onnx is missing"):
        load_bundle(folder)
    with pytest.raises(BundleError, match="no meta.json"):
        load_bundle(tmp_path)
    with pytest.raises(BundleError, match="not a folder"):
        load_bundle(tmp_path / "nowhere")


def test_edited_hash_in_meta_is_refused(tmp_path):
    folder = make_bundle(tmp_path)
    _edit_meta(folder, lambda m: m["files"]["model.onnx"].update(sha256="ab" * 32))
    with pytest.raises(BundleError, match="sha256 expected abab"):
        load_bundle(folder)
    _edit_meta(folder, lambda m: m["files"]["model.onnx"].update(sha256="not-a-hash"))
    with pytest.raises(BundleError, match="files.model.onnx.sha256"):
        load_bundle(folder)


def test_newer_format_version_says_upgrade(tmp_path):
    folder = make_bundle(tmp_path)
    _edit_meta(folder, lambda m: m.update(format_version=2, input="a new layout"))
    with pytest.raises(BundleError, match=r"format_version 2.*upgrade effseg"):
        load_bundle(folder)
    _edit_meta(folder, lambda m: m.update(format="something-else"))
    with pytest.raises(BundleError, match="'format'"):
        load_bundle(folder)


def test_effseg_version_compatibility():
    check_effseg_version("0.1.0", "0.1.5")
    check_effseg_version("1.2.0", "1.4.0")
    with pytest.raises(BundleError, match="newer than this effseg 0.1.0: upgrade"):
        check_effseg_version("0.2.0", "0.1.0")
    with pytest.raises(BundleError, match="export the model again"):
        check_effseg_version("0.1.0", "0.2.0")
    with pytest.raises(BundleError, match="export the model again"):
        check_effseg_version("1.9.0", "2.0.0")
    with pytest.raises(BundleError, match="effseg_version"):
        check_effseg_version("latest", "0.1.0")


@pytest.mark.parametrize(("edit", "key"), [
    (lambda m: m.pop("palette"), "'palette' is missing"),
    (lambda m: m["input"].pop("dtype"), "'input.dtype' is missing"),
    (lambda m: m["input"].update(height="512"), "'input.height' must be an integer"),
    (lambda m: m["input"].update(dynamic_hw=1), "'input.dynamic_hw' must be true or false"),
    (lambda m: m["input"].update(dtype="int8"), "'input.dtype' must be 'float32' or 'float16'"),
    (lambda m: m.update(num_classes=True), "'num_classes' must be an integer"),
    (lambda m: m.update(classes=["a"]), "'classes' must be a list of 4 names"),
    (lambda m: m["palette"][0].append(1), "'palette' must be a list of 4"),
    (lambda m: m["normalize"].update(std=[1.0, 0.0, 1.0]), "'normalize.std' must be positive"),
    (lambda m: m["normalize"].update(mean=[1.0]), "'normalize.mean' must be a list of 3 numbers"),
    (lambda m: m["tile"].update(overlap=16), "'tile.overlap' must be at most half of tile.size"),
    (lambda m: m["output"].update(kind="probabilities"), "'output.kind'"),
    (lambda m: m.update(precision="int4"), "'precision'"),
    (lambda m: m["files"].update({"../evil.onnx": m["files"]["model.onnx"]}), "plain file names"),
    (lambda m: m["files"].pop("model.onnx"), "listing 'model.onnx'"),
])
def test_schema_errors_name_the_key(tmp_path, edit, key):
    folder = make_bundle(tmp_path)
    _edit_meta(folder, edit)
    with pytest.raises(BundleError, match=key.replace("[", r"\[").replace(".", r"\.")):
        load_bundle(folder)


def test_meta_json_that_is_not_json(tmp_path):
    folder = make_bundle(tmp_path)
    (folder / "meta.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(folder)


def test_bundle_meta_argument_errors():
    with pytest.raises(ValueError, match="input_shape"):
        bundle_meta(architecture="x", num_classes=4, input_shape=(16, 16))
    with pytest.raises(ValueError, match="num_classes"):
        bundle_meta(architecture="x", num_classes=0, input_shape=(3, 16, 16))
    with pytest.raises(ValueError, match="tile.overlap"):
        bundle_meta(architecture="x", num_classes=4, input_shape=(3, 16, 16), tile_size=16, tile_overlap=16)
    with pytest.raises(ValueError, match="'classes'"):
        bundle_meta(architecture="x", num_classes=4, input_shape=(3, 16, 16), classes=["a", "b"])
    with pytest.raises(ValueError, match="'precision'"):
        bundle_meta(architecture="x", num_classes=4, input_shape=(3, 16, 16), precision="bf16")
    m = bundle_meta(architecture="x", num_classes=6, input_shape=(1, 3, 512, 512))
    assert m["tile"] == {"size": 512, "overlap": 64} and m["normalize"]["mean"][0] == 123.675
    assert "files" not in m


def test_write_bundle_errors(tmp_path):
    meta = bundle_meta(architecture="x", num_classes=4, input_shape=(3, 16, 16))
    with pytest.raises(FileNotFoundError, match="onnx_path"):
        write_bundle(tmp_path / "b", tmp_path / "missing.onnx", meta=meta)
    folder = make_bundle(tmp_path)
    with pytest.raises(FileNotFoundError, match="engine_path"):
        write_bundle(tmp_path / "b", folder / "model.onnx", meta=meta, engine_path=tmp_path / "none.engine")
    with pytest.raises(TypeError, match="meta"):
        write_bundle(tmp_path / "b", folder / "model.onnx", meta=None)


def _bundle_with_engine(tmp_path, version="10.3.0"):
    # Not an engine, only bytes to hash: these tests check the bundle's bookkeeping and the
    # refusal paths, which never reach TensorRT (it is not installed here).
    folder = make_bundle(tmp_path)
    (tmp_path / "built.engine").write_bytes(b"serialized engine stand-in")
    meta = {k: v for k, v in load_bundle(folder).meta.items() if k != "files"}
    return write_bundle(folder, folder / "model.onnx", meta=meta, engine_path=tmp_path / "built.engine",
                        tensorrt_version=version)


def test_engine_is_listed_with_its_tensorrt_version(tmp_path):
    folder = _bundle_with_engine(tmp_path)
    b = load_bundle(folder)
    assert b.engine_path == folder / "model.engine"
    assert b.meta["files"]["model.engine"]["tensorrt_version"] == "10.3.0"
    assert b.meta["files"]["model.engine"]["sha256"] == sha256_file(folder / "model.engine")
    # Rewriting without an engine drops the stale one.
    meta = {k: v for k, v in b.meta.items() if k != "files"}
    write_bundle(folder, folder / "model.onnx", meta=meta)
    assert not (folder / "model.engine").exists() and load_bundle(folder).engine_path is None


def test_engine_without_version_needs_tensorrt(tmp_path):
    from effseg.runtime import tensorrt_version

    if tensorrt_version() is not None:
        pytest.skip("tensorrt is installed: its version is recorded")
    folder = make_bundle(tmp_path)
    (tmp_path / "e.engine").write_bytes(b"x")
    meta = {k: v for k, v in load_bundle(folder).meta.items() if k != "files"}
    with pytest.raises(ValueError, match="tensorrt_version"):
        write_bundle(folder, folder / "model.onnx", meta=meta, engine_path=tmp_path / "e.engine")


def test_engine_version_mismatch_messages():
    assert engine_mismatch("10.3.0", (10, 3, 0)) is None
    assert engine_mismatch("10.3.0.26", (10, 3, 0)) is None
    msg = engine_mismatch("10.3.0", (10, 7, 0))
    assert "built with TensorRT 10.3.0" in msg and "10.7.0 is installed" in msg
    assert "not installed" in engine_mismatch("10.3.0", None)


def test_engine_that_cannot_run_here(tmp_path):
    from effseg.runtime import tensorrt_version

    if tensorrt_version() is not None:
        pytest.skip("tensorrt is installed: the refusal paths need it absent")
    folder = _bundle_with_engine(tmp_path)
    with pytest.raises(BundleError, match="backend='tensorrt' cannot run: tensorrt is not installed"):
        Predictor(folder, backend="tensorrt")
    with pytest.warns(RuntimeWarning, match="running model.onnx with ONNX Runtime: tensorrt is not installed"):
        p = Predictor(folder, backend="auto")
    assert p.backend == "onnxruntime"
    # No engine, no warning.
    plain = make_bundle(tmp_path, name="plain")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Predictor(plain).backend == "onnxruntime"
    with pytest.raises(BundleError, match="no model.engine"):
        Predictor(plain, backend="tensorrt")


def test_tampered_engine_is_refused(tmp_path):
    folder = _bundle_with_engine(tmp_path)
    (folder / "model.engine").write_bytes(b"serialized engine stand-In")
    with pytest.raises(BundleError, match="model.engine does not match"):
        load_bundle(folder)


def test_external_data_travels_with_the_model_and_is_verified(tmp_path):
    import onnx
    from bundle_cases import conv_net

    src = tmp_path / "src"
    src.mkdir()
    model = onnx.load(str(conv_net(tmp_path / "plain.onnx", height=16, width=16)))
    onnx.save_model(model, str(src / "net.onnx"), save_as_external_data=True, location="net.weights",
                    size_threshold=0)
    meta = bundle_meta(architecture="tinyconv", num_classes=4, input_shape=(3, 16, 16), mean=MEAN, std=STD)
    folder = write_bundle(tmp_path / "b", src / "net.onnx", meta=meta)
    assert set(load_bundle(folder).meta["files"]) == {"model.onnx", "net.weights"}
    img = np.random.default_rng(2).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    want = Predictor(make_bundle(tmp_path, name="ref", kernel=3, height=16, width=16)).predict(img)
    np.testing.assert_array_equal(Predictor(folder).predict(img), want)
    data = bytearray((folder / "net.weights").read_bytes())
    data[0] ^= 0x10
    (folder / "net.weights").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="net.weights does not match"):
        load_bundle(folder)
