"""`effseg export` / export_bundle: a model to a bundle that effseg.runtime runs, the INT8
path, the TensorRT-check refusal, and the option errors."""
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from effseg.cli import main
from effseg.export.pipeline import BundleOptions, ExportRefused, export_bundle
from effseg.runtime import Predictor, load_bundle, normalize


class SmallNet(nn.Module):
    size_multiple = 8

    def __init__(self, classes=3):
        super().__init__()
        self.in_channels, self.num_classes = 3, classes
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Conv2d(8, classes, 1))

    def forward(self, x):
        return self.body(x)


class SpectralNet(SmallNet):
    """An FFT in the graph: ONNX DFT, which TensorRT's parser rejects."""

    def forward(self, x):
        return self.body(x) + torch.fft.rfft2(x, norm="ortho").abs().mean()


def _images(folder, n=4, size=32, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size + 4 * i, 3), dtype=np.uint8)).save(folder / f"im{i}.png")
    return folder


def _opts(**kw):
    return BundleOptions(size=32, num_classes=3, progress=False, **kw)


def test_bundle_round_trip_matches_the_torch_model(tmp_path):
    torch.manual_seed(0)
    model = SmallNet().eval()
    summary = export_bundle(model, tmp_path / "b", _opts(classes=["a", "b", "c"]))
    assert summary["precision"] == "fp32" and summary["export"]["parity"]["ok"]
    bundle = load_bundle(tmp_path / "b")
    assert bundle.meta["classes"] == ["a", "b", "c"] and bundle.meta["opset"] == 17
    img = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    got = Predictor(tmp_path / "b").predict(img)
    x = torch.from_numpy(normalize(img, bundle.meta["normalize"]["mean"], bundle.meta["normalize"]["std"]))
    with torch.no_grad():
        want = model(x[None])[0].argmax(0).numpy()
    assert (got == want).mean() >= 0.999


def test_int8_bundle_from_a_calibration_folder(tmp_path):
    torch.manual_seed(0)
    calib = _images(tmp_path / "calib", n=6)
    summary = export_bundle(SmallNet().eval(), tmp_path / "q", _opts(int8=True, calib=str(calib)))
    assert summary["precision"] == "int8"
    assert summary["int8"]["quantized_nodes"] >= 1 and summary["int8"]["pixel_agreement"] >= 0.9
    meta = json.loads((tmp_path / "q" / "meta.json").read_text())
    assert meta["precision"] == "int8"
    import onnx

    ops = {n.op_type for n in onnx.load(tmp_path / "q" / "model.onnx").graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    labels = Predictor(tmp_path / "q").predict(np.zeros((32, 32, 3), np.uint8))
    assert labels.shape == (32, 32)
    # Without --engine the placement is ONNX Runtime's: integer kernels, speed measured,
    # and the TensorRT check (which rejects uint8 zero-points) recorded as skipped.
    q = summary["int8"]
    assert q["target"] == "cpu" and q["kernels"] == {"integer": 1, "float": 1}  # the head Conv keeps fp32
    assert set(q["speed"]) == {"fp32_ms", "int8_ms", "speedup"}
    assert "skipped" in summary["tensorrt_check"]


def test_int8_for_tensorrt_keeps_the_symmetric_graph_and_the_check(tmp_path):
    calib = _images(tmp_path / "calib", n=2)
    summary = export_bundle(SmallNet().eval(), tmp_path / "t",
                            _opts(int8=True, calib=str(calib), int8_target="tensorrt"))
    assert summary["int8"]["target"] == "tensorrt" and summary["int8"]["speed"] is None
    assert "skipped" not in summary["tensorrt_check"]
    assert not [f for f in summary["tensorrt_check"]["findings"] if f["severity"] == "fatal"]


def test_fatal_tensorrt_finding_refuses_unless_allowed(tmp_path):
    with pytest.raises(ExportRefused, match="allow-fatal") as info:
        export_bundle(SpectralNet().eval(), tmp_path / "r", _opts())
    assert any(f.op_type == "DFT" for f in info.value.findings)
    assert not (tmp_path / "r" / "meta.json").exists()
    summary = export_bundle(SpectralNet().eval(), tmp_path / "r", _opts(allow_fatal=True))
    assert any(f["severity"] == "fatal" for f in summary["tensorrt_check"]["findings"])
    assert (tmp_path / "r" / "meta.json").exists()


@pytest.mark.parametrize("kw, match", [
    ({"fp16": True, "int8": True, "calib": "x"}, "exclude each other"),
    ({"int8": True}, "--calib"),
    ({"calib": "x"}, "--int8 only"),
    ({"classes": ["a"]}, "--classes names 1"),
    ({"int8": True, "calib": "x", "int8_target": "gpu"}, "--int8-target must be one of auto, cpu, tensorrt, got 'gpu'"),
    ({"int8": True, "calib": "x", "int8_target": "cpu", "engine": True}, "--engine needs --int8-target tensorrt"),
])
def test_option_errors(tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        export_bundle(SmallNet().eval(), tmp_path / "e", _opts(**kw))


def test_cli_export_then_run(tmp_path, capsys):
    code = main(["export", "unetformer", "--size", "64", "--out", str(tmp_path / "b"), "--no-progress",
                 "--classes", "imp,bld,low,tree,car,clutter"])
    assert code == 0
    assert "ONNX Runtime parity: rel err" in capsys.readouterr().out
    imgs = _images(tmp_path / "imgs", n=2, size=80)
    assert main(["run", str(tmp_path / "b"), str(imgs), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "im0.png_color.png", "im0.png_labels.png", "im1.png_color.png", "im1.png_labels.png"]
    lab = np.asarray(Image.open(tmp_path / "out" / "im1.png_labels.png"))
    assert lab.shape == (80, 84) and lab.max() < 6


def test_cli_export_errors_exit_2(tmp_path, capsys):
    assert main(["export", "no-such-model", "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert main(["export", "unetformer", "--int8", "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    assert "--calib" in capsys.readouterr().err
