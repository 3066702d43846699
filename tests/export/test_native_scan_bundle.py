"""The native-scan form of an SS2D bundle: model.onnx cut at its cross selective scans,
run as ONNX Runtime segments around effseg's C++ scan. It must agree with model.onnx
(the standard-op form, which stays TensorRT-parsable) and with PyTorch, fall back to
model.onnx without effseg._C, and run without torch."""
import json
import shutil

import numpy as np
import onnx
import pytest
import torch
from no_torch import run_without_torch

from effseg.bench.mamba_runtime import TinySS2DNet
from effseg.export.onnx import FORBIDDEN_OPS, onnx_op_types
from effseg.export.pipeline import BundleOptions, export_bundle
from effseg.export.scan_split import SCAN_DOMAIN, split_at_scans, write_native_scan
from effseg.export.tensorrt_check import check_tensorrt, fatal
from effseg.runtime import native_scan
from effseg.runtime.bundle import BundleError, load_bundle
from effseg.runtime.predictor import Predictor
from effseg.runtime.segmented import SegmentedModel

pytestmark = pytest.mark.skipif(not native_scan.available(),
                                reason=f"the native-scan form needs effseg._C: {native_scan.reason()}")
SIZE = 32
# fp32 through two scans and the segment boundaries; model.onnx's chunked scan rounds
# differently from the sequential C++ one, hence the same rule as effseg's ONNX parity.
RTOL = 1e-4


@pytest.fixture(scope="module")
def net():
    return TinySS2DNet().eval()


@pytest.fixture(scope="module")
def bundle(net, tmp_path_factory):
    out = tmp_path_factory.mktemp("ss2d") / "bundle"
    summary = export_bundle(net, out, BundleOptions(size=SIZE, num_classes=3, progress=False))
    assert summary["native_scan"] == {"segments": 3, "scans": 2}
    return out


def _close(got, want):
    scale = float(np.abs(want).max())
    np.testing.assert_allclose(got, want, rtol=0, atol=RTOL * scale)


def test_model_onnx_stays_the_standard_op_form_tensorrt_parses(bundle):
    meta = json.loads((bundle / "meta.json").read_text())
    sec = meta["native_scan"]
    assert [("scan" in s) for s in sec["steps"]] == [False, True, False, True, False]
    assert set(sec["segments"]) | {sec["constants"]} <= set(meta["files"])
    proto = onnx.load(str(bundle / "model.onnx"))
    assert not any(n.domain == SCAN_DOMAIN for n in proto.graph.node)
    assert not onnx_op_types(proto) & FORBIDDEN_OPS
    assert fatal(check_tensorrt(bundle / "model.onnx")) == []
    for name in sec["segments"]:  # plain ONNX: no effseg node is left for ONNX Runtime
        assert not any(n.domain == SCAN_DOMAIN for n in onnx.load(str(bundle / name)).graph.node)


def test_native_form_matches_model_onnx_and_pytorch(bundle, net):
    fast, plain = Predictor(bundle, backend="onnxruntime"), Predictor(bundle, native_scan=False)
    assert (fast.backend, plain.backend) == ("onnxruntime+native-scan", "onnxruntime")
    assert fast.native_scan_reason is None and plain.native_scan_reason == "native_scan=False"
    x = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = net(x).numpy()
    got = fast._model(x.numpy())
    _close(got, want)
    _close(got, plain._model(x.numpy()))
    # An odd-sized image goes through tiling: both forms must give the same classes.
    img = np.random.default_rng(0).integers(0, 256, (45, 37, 3), dtype=np.uint8)
    a, b = fast.predict(img), plain.predict(img)
    assert a.shape == (45, 37) and (a == b).mean() > 0.999


def test_dynamic_native_form_runs_other_sizes_and_batches(net, tmp_path):
    sec, files = write_native_scan(net, tmp_path, input_shape=(1, 3, SIZE, SIZE), dynamic_batch=True,
                                   dynamic_hw=True)
    assert sum("scan" in s for s in sec["steps"]) == 2 and len(files) == 4
    run = SegmentedModel(sec, lambda n: (tmp_path / n).read_bytes(), "input", "logits")
    x = torch.randn(2, 3, SIZE, 2 * SIZE, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        want = net(x).numpy()
    _close(run(x.numpy()), want)


def test_without_effseg_C_it_falls_back_to_model_onnx(bundle, monkeypatch):
    monkeypatch.setattr(native_scan, "_REASON", "effseg._C does not import (test)")
    with pytest.warns(RuntimeWarning, match="standard-op scans .*effseg._C does not import"):
        p = Predictor(bundle)
    assert p.backend == "onnxruntime" and "does not import" in p.native_scan_reason
    with pytest.raises(BundleError, match="native_scan=True cannot run: effseg._C does not import"):
        Predictor(bundle, native_scan=True)
    with pytest.raises(ValueError, match="native_scan must be None, True or False"):
        Predictor(bundle, native_scan="yes")


_PROBE = """
import json, sys, numpy as np
{block_c}
from effseg.runtime.predictor import Predictor
p = Predictor({bundle!r})
x = np.random.default_rng(5).standard_normal((1, 3, {size}, {size})).astype(np.float32)
print(json.dumps({{"backend": p.backend, "torch": "torch" in sys.modules, "out": p._model(x).ravel().tolist()}}))
"""


@pytest.mark.parametrize("with_c", [True, False])
def test_bundle_runs_without_torch_with_and_without_effseg_C(bundle, with_c):
    block = "" if with_c else "sys.modules['effseg._C'] = None"
    r = run_without_torch(_PROBE.format(block_c=block, bundle=str(bundle), size=SIZE))
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["torch"] is False
    assert got["backend"] == ("onnxruntime+native-scan" if with_c else "onnxruntime")
    x = np.random.default_rng(5).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)
    _close(np.asarray(got["out"], np.float32), Predictor(bundle, native_scan=False)._model(x).ravel())


def test_a_changed_segment_is_refused(bundle, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    seg = json.loads((copy / "meta.json").read_text())["native_scan"]["segments"][1]
    data = bytearray((copy / seg).read_bytes())
    data[-1] ^= 1
    (copy / seg).write_bytes(bytes(data))
    with pytest.raises(BundleError, match=f"bundle file {seg} does not match meta.json"):
        load_bundle(copy)


def test_a_graph_without_scans_cannot_be_cut(bundle):
    with pytest.raises(ValueError, match="holds no effseg.CrossSelectiveScan node"):
        split_at_scans(onnx.load(str(bundle / "model.onnx")))


def test_effseg_run_uses_the_native_form_unless_told_not_to(bundle, tmp_path, capsys):
    from PIL import Image

    from effseg.cli import main

    Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 36, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    for flags, backend in (([], "onnxruntime+native-scan"), (["--no-native-scan"], "onnxruntime")):
        out = tmp_path / backend
        assert main(["run", str(bundle), str(tmp_path / "a.png"), "--out", str(out), "--no-progress", *flags]) == 0
        assert f"({backend})" in capsys.readouterr().out
        assert (out / "a.png_labels.png").is_file()
    a, b = (np.asarray(Image.open(tmp_path / d / "a.png_labels.png")) for d in ("onnxruntime+native-scan",
                                                                                 "onnxruntime"))
    assert a.shape == (40, 36) and (a == b).mean() > 0.999
