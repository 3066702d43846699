"""`effseg predict` on an `effseg train` checkpoint: no --arch, its normalisation, class
names and palette in the outputs, and the same answer from every runtime: the temporary
ONNX Runtime bundle, the nn.Module through effseg.compile (--backend torch) and, where
installed, a TensorRT engine."""
import json

import numpy as np
import pytest
import rasterio
import torch
from bundle_cases import make_bundle
from raster_cases import rgb, transform, write_tif
from train_nets import two_conv_bn

from effseg.cli import main
from effseg.predict.model import load_predictor
from effseg.train.checkpoint import save_checkpoint

# fp32 through different kernels (ONNX Runtime, torch's, BN folded by effseg.compile):
# on CPU logits agree to ~1e-6 on this net; 1e-4 leaves room for other CPUs' kernels.
# With a GPU, torch (cuDNN) and ONNX Runtime's CUDA provider may run fp32 convolutions
# as TF32 (10-bit mantissa): ~1e-3 relative, hence the wider bounds there.
_GPU = torch.cuda.is_available()
LOGIT_TOL = 1e-2 if _GPU else 1e-4
# Where the top two logits are this close, either class is a correct answer.
TIE_TOL = 2e-2 if _GPU else 1e-3
# --probs stores round(p x 255): one step of rounding either way (two with TF32).
PROB_TOL = 2 if _GPU else 1
CLASSES = ["water", "road", "roof", "tree"]
PALETTE = [[10, 20, 200], [128, 128, 128], [200, 40, 40], [20, 160, 30]]
# Deliberately far from ImageNet's: a route that ignored the checkpoint's statistics
# would give other class maps.
NORMALIZE = {"mean": [90.0, 120.0, 140.0], "std": [30.0, 40.0, 25.0]}
TILE = 64


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A checkpoint as `effseg train` writes it (effseg.train.checkpoint.save_checkpoint
    with the metadata train's loop records), of a tiny conv + BN net."""
    torch.manual_seed(0)
    net = two_conv_bn(num_classes=4, in_channels=3)
    with torch.no_grad():  # BN statistics that are not the identity, so folding them matters
        bn = net[1]
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.2, 0.2)
    meta = {"architecture": "train_nets:two_conv_bn", "num_classes": 4, "in_channels": 3, "classes": CLASSES,
            "palette": PALETTE, "normalize": NORMALIZE, "tile_size": TILE, "format": "folder",
            "pixel_dtype": "uint8", "ignore_index": 255, "loss": "ce", "seed": 0, "effseg_version": "0", "kd": None}
    path = tmp_path_factory.mktemp("run") / "best.ckpt"
    return save_checkpoint(path, net, meta, epoch=1, global_step=8)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """Odd-sized (101 x 150: 2 x 3 tiles of 64), smooth enough for large regions, with a
    nodata corner."""
    img = rgb(101, 150, seed=3).astype(np.float64)
    k = np.ones(9) / 9  # a box blur along both axes: regions, not salt-and-pepper
    img = np.apply_along_axis(np.convolve, 1, img, k, "same")
    img = np.apply_along_axis(np.convolve, 2, img, k, "same")
    img = np.clip((img - 128) * 3 + 128, 1, 255).astype(np.uint8)
    img[:, :5, :7] = 0
    return write_tif(tmp_path_factory.mktemp("in") / "scene.tif", img, nodata=0, tiled=True, block=32)


def _predict(ckpt, scene, out, *extra):
    code = main(["predict", str(ckpt), str(scene), "--out", str(out), "--probs", "--no-progress", *extra])
    assert code == 0
    with rasterio.open(out / "scene.tif") as d, rasterio.open(out / "scene_probs.tif") as p:
        return dict(labels=d.read(1), probs=p.read(), colormap=d.colormap(1), tags=d.tags(), crs=d.crs,
                    transform=d.transform, nodata=d.nodata, probs_tags=p.tags())


def _image(scene):
    with rasterio.open(scene) as d:
        return np.moveaxis(d.read(), 0, -1)


def _assert_same_classes(a, b, logits):
    """Class maps equal except where the top two logits are within TIE_TOL."""
    top2 = np.sort(np.nan_to_num(logits, nan=0.0), axis=0)[-2:]
    tie = (top2[1] - top2[0]) <= TIE_TOL
    differ = a != b
    assert not (differ & ~tie).any(), f"{int((differ & ~tie).sum())} pixels differ where the classes are clear"
    assert tie.mean() < 0.01, "so many near-ties that the comparison says little"


def test_checkpoint_runs_the_same_on_onnxruntime_and_torch(ckpt, scene, tmp_path, capsys):
    ort = _predict(ckpt, scene, tmp_path / "ort", "--backend", "onnxruntime")
    tch = _predict(ckpt, scene, tmp_path / "torch", "--backend", "torch", "--compile-backend", "eager")
    assert "(torch (eager via effseg.compile" in capsys.readouterr().out
    logits = load_predictor(ckpt, backend="torch").predict_logits(_image(scene))
    _assert_same_classes(ort["labels"], tch["labels"], logits)
    assert np.abs(ort["probs"].astype(int) - tch["probs"].astype(int)).max() <= PROB_TOL
    # Not a trivial map: several classes, and the nodata corner marked.
    assert len(np.unique(tch["labels"][tch["labels"] != 255])) >= 3
    assert (tch["labels"][:5, :7] == 255).all() and (tch["labels"][5:, 7:] != 255).all()
    for r in (ort, tch):  # the checkpoint's metadata, from either route
        assert json.loads(r["tags"]["CLASSES"]) == CLASSES and r["tags"]["CLASS_2"] == "roof"
        assert [list(r["colormap"][i][:3]) for i in range(4)] == PALETTE
        assert r["crs"].to_epsg() == 32616 and r["transform"] == transform() and r["nodata"] == 255
    for key in ("tags", "colormap", "crs", "transform", "nodata", "probs_tags"):
        assert ort[key] == tch[key], key


def test_both_routes_use_the_checkpoints_normalisation_and_tiles(ckpt, scene):
    image = _image(scene)
    ort = load_predictor(ckpt, backend="onnxruntime")
    tch = load_predictor(ckpt, backend="torch")
    for p in (ort, tch):
        assert p.bundle.meta["normalize"] == NORMALIZE and p.bundle.meta["tile"]["size"] == TILE
        assert p.bundle.classes == CLASSES and p.bundle.palette == PALETTE
    a, b = ort.predict_logits(image), tch.predict_logits(image)
    assert np.array_equal(np.isnan(a), np.isnan(b))
    assert np.nanmax(np.abs(a - b)) <= LOGIT_TOL
    # The torch route's answer is the module's own on the normalised pixels (a crop of one
    # tile's size is one tile, no blending): not only the same as ONNX Runtime, but right.
    crop = image[20:84, 40:104]
    net = two_conv_bn(num_classes=4, in_channels=3)
    net.load_state_dict({k[len("net."):]: v for k, v in torch.load(ckpt, weights_only=True)["state_dict"].items()})
    x = (crop.astype(np.float32) - np.float32(NORMALIZE["mean"])) / np.float32(NORMALIZE["std"])
    with torch.no_grad():
        want = net.eval()(torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 0))[None]))[0].numpy()
    assert np.abs(tch.predict_logits(crop) - want).max() <= LOGIT_TOL


def test_tensorrt_engine_matches_torch(ckpt, scene, tmp_path):
    pytest.importorskip("tensorrt", reason="tensorrt is not installed: the TensorRT route cannot run here")
    if not torch.cuda.is_available():
        pytest.skip("tensorrt needs a CUDA GPU")
    from effseg.export.pipeline import BundleOptions, export_bundle
    from effseg.runtime.predictor import Predictor

    export_bundle(str(ckpt), tmp_path / "trt", BundleOptions(engine=True, progress=False))
    trt = Predictor(tmp_path / "trt", backend="tensorrt")
    assert trt.backend == "tensorrt"
    image = _image(scene)
    a = trt.predict_logits(image)
    b = load_predictor(ckpt, backend="torch").predict_logits(image)
    # TensorRT may run fp32 convolutions as TF32, like torch on the GPU (see LOGIT_TOL).
    assert np.nanmax(np.abs(a - b)) <= LOGIT_TOL
    _assert_same_classes(trt.predict(image), load_predictor(ckpt, backend="torch").predict(image), b)


def _error(capsys, *args):
    assert main(["predict", *map(str, args), "--no-progress"]) == 2
    return capsys.readouterr().err


def test_errors_name_the_argument(ckpt, scene, tmp_path, capsys):
    plain = tmp_path / "plain.pth"
    torch.save(two_conv_bn(4, 3).state_dict(), plain)
    err = _error(capsys, plain, scene, "--out", tmp_path / "o")
    assert "without `effseg train` metadata" in err and "--arch NAME" in err
    bundle = make_bundle(tmp_path, dynamic_hw=True, tile_size=32, height=32, width=32)
    err = _error(capsys, bundle, scene, "--out", tmp_path / "o", "--backend", "torch")
    assert "--backend torch runs a checkpoint's nn.Module" in err and "is a bundle" in err
    err = _error(capsys, "unetformer", scene, "--out", tmp_path / "o")
    assert "neither a bundle folder nor a checkpoint file" in err and "trained weights" in err
    err = _error(capsys, ckpt, scene, "--out", tmp_path / "o", "--compile-backend", "inductor")
    assert "--compile-backend inductor: applies to --backend torch only" in err
    err = _error(capsys, ckpt, scene, "--out", tmp_path / "o", "--backend", "tensorrt")
    assert "--backend tensorrt runs a bundle's model.engine" in err and "effseg export CKPT --engine" in err
    err = _error(capsys, ckpt, scene, "--out", tmp_path / "o", "--num-classes", "6")
    assert "--num-classes 6" in err and "trained with 4" in err
    err = _error(capsys, ckpt, scene, "--out", tmp_path / "o", "--backend", "torch", "--ray", "local")
    assert "--ray sends a bundle" in err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
