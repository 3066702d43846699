"""meta.json's native_scan section is checked, each error naming the key; load_bundle checks it too."""
import pytest

from effseg.runtime.bundle import BundleError
from effseg.runtime.segmented import _last_reads, section_files, validate_section

SCAN = {"scan": {"inputs": ["u", "dt", "A", "B", "C", "D", "db", "tmap"], "output": "y", "delta_softplus": True}}


def _meta(**sec):
    base = {"constants": "c.onnx", "segments": ["s0.onnx", "s1.onnx"],
            "steps": [{"segment": 0}, SCAN, {"segment": 1}]}
    base.update(sec)
    files = {n: {} for n in ("model.onnx", "c.onnx", "s0.onnx", "s1.onnx")}
    return {"files": files, "native_scan": base}


def test_a_good_section_passes_and_lists_its_files():
    m = _meta()
    assert validate_section(m) is m["native_scan"]
    assert section_files(m) == {"c.onnx", "s0.onnx", "s1.onnx"}
    assert validate_section({"files": {}}) is None and section_files({}) == set()


@pytest.mark.parametrize(("sec", "key"), [
    ({"constants": "missing.onnx"}, "native_scan.constants"),
    ({"segments": []}, "native_scan.segments"),
    ({"segments": ["s0.onnx", "elsewhere.onnx"]}, "native_scan.segments"),
    ({"steps": []}, "native_scan.steps"),
    ({"steps": [{"segment": 2}]}, "native_scan.steps[0].segment"),
    ({"steps": [{"segment": True}]}, "native_scan.steps[0].segment"),
    ({"steps": [{"other": 1}]}, "native_scan.steps[0]"),
    ({"steps": [{"scan": dict(SCAN["scan"], inputs=["u"])}]}, "native_scan.steps[0].scan.inputs"),
    ({"steps": [{"scan": dict(SCAN["scan"], output="")}]}, "native_scan.steps[0].scan.output"),
    ({"steps": [{"scan": dict(SCAN["scan"], delta_softplus=1)}]}, "native_scan.steps[0].scan.delta_softplus"),
])
def test_each_bad_key_is_named(sec, key):
    with pytest.raises(BundleError, match=f"key '{key.replace('[', '.').replace(']', '.')}"):
        validate_section(_meta(**sec))


def test_values_are_dropped_after_their_last_read():
    io = [(["x"], ["a", "b"]), (["y", "b"], ["out"])]
    steps = [{"segment": 0}, {"scan": {"inputs": ["a"] * 8, "output": "y", "delta_softplus": True}},
             {"segment": 1}]
    assert [sorted(d) for d in _last_reads(steps, io)] == [["x"], ["a"], ["b", "y"]]


def test_load_bundle_refuses_a_bad_section(tmp_path):
    import json

    from bundle_cases import make_bundle

    from effseg.runtime.bundle import load_bundle

    folder = make_bundle(tmp_path, "b")
    meta = json.loads((folder / "meta.json").read_text())
    meta["native_scan"] = {"constants": "model.onnx", "segments": ["nowhere.onnx"], "steps": [{"segment": 0}]}
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="key 'native_scan.segments'"):
        load_bundle(folder)
    assert section_files({"native_scan": {"constants": "c", "segments": [["odd"], "s"]}}) == {"c", "s"}
