"""effseg.export.quantize: explicit Q/DQ INT8 models, their calibration and their numerics."""
import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper

from effseg.export import calib_data, calibrate
from effseg.export.quantize import quantize, quantize_weight
from effseg.runtime.images import normalize

SIZE = 32
# Class k is painted with COLOURS[k]; class 0 is the background.
COLOURS = np.array([[90, 90, 90], [220, 40, 40], [40, 200, 60], [50, 70, 230]], dtype=np.float32)


def synthetic(n, seed, size=SIZE):
    """(n, size, size, 3) uint8 scenes of coloured rectangles and their (n, size, size) labels."""
    rng = np.random.default_rng(seed)
    imgs = np.empty((n, size, size, 3), dtype=np.uint8)
    labels = np.zeros((n, size, size), dtype=np.int64)
    for i in range(n):
        lab = labels[i]
        for _ in range(rng.integers(2, 5)):
            k = rng.integers(1, len(COLOURS))
            y0, x0 = rng.integers(0, size - 6, 2)
            h, w = rng.integers(5, size // 2, 2)
            lab[y0:y0 + h, x0:x0 + w] = k
        noisy = COLOURS[lab] + rng.normal(0, 12, (size, size, 3))
        imgs[i] = np.clip(noisy, 0, 255).astype(np.uint8)
    return imgs, labels


def preprocess(imgs):
    return np.stack([normalize(im) for im in imgs])


class TinySeg(nn.Module):
    """Conv+BN+ReLU x2 (one strided), a MatMul channel mixer, bilinear Resize, 1x1 head."""

    def __init__(self, classes=4, width=16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.down = nn.Sequential(nn.Conv2d(width, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.mix = nn.Linear(width, width)
        self.head = nn.Conv2d(width, classes, 1)

    def forward(self, x):
        h = self.down(self.stem(x))
        n, c, hh, ww = h.shape
        t = self.mix(h.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(n, c, hh, ww)
        h = F.interpolate(F.relu(h + t), scale_factor=2, mode="bilinear", align_corners=False)
        return self.head(h)


@pytest.fixture(scope="module")
def trained_onnx(tmp_path_factory):
    # One thread: on a shared 2-core machine two threads contend and training takes 50x longer.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train_and_export(tmp_path_factory.mktemp("quant") / "tiny.onnx")
    finally:
        torch.set_num_threads(threads)


def _train_and_export(path):
    torch.manual_seed(0)
    imgs, labels = synthetic(64, seed=1)
    x, y = torch.from_numpy(preprocess(imgs)), torch.from_numpy(labels)
    net = TinySeg()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(150):
        idx = torch.randint(0, len(x), (8,), generator=gen)
        loss = F.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        torch.onnx.export(net, (x[:1],), str(path), dynamo=True, opset_version=17, verbose=False,
                          input_names=["image"], output_names=["logits"])
    with torch.no_grad():
        acc = (net(x).argmax(1) == y).float().mean().item()
    assert acc > 0.97, f"the test network did not learn its task (pixel accuracy {acc:.3f})"
    return path


def _initializers(model):
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def _producers(model):
    return {o: n for n in model.graph.node for o in n.output}


def _run(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


# --- the rewritten graph ------------------------------------------------------------------


@pytest.mark.parametrize("per_channel", [True, False])
def test_qdq_graph_structure(trained_onnx, tmp_path, per_channel):
    out = tmp_path / "int8.onnx"
    calib = preprocess(synthetic(4, seed=2)[0])
    report = quantize(trained_onnx, out, calib, method="minmax", per_channel=per_channel, progress=False)
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    inits = _initializers(model)
    prod = _producers(model)
    fp32 = _initializers(onnx.load(str(trained_onnx)))

    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert qdq
    for n in qdq:
        assert len(n.input) == 3, f"{n.name} has no explicit zero point (would default to uint8)"
        zp = inits[n.input[2]]
        assert zp.dtype == np.int8 and not zp.any(), f"{n.name}: zero point must be int8 zeros"
        assert inits[n.input[1]].dtype == np.float32 and (inits[n.input[1]] > 0).all()

    targets = [n for n in model.graph.node if n.op_type in ("Conv", "MatMul")]
    assert [n.op_type for n in targets] == ["Conv", "Conv", "MatMul", "Conv"]
    assert report.quantized_nodes == len(targets)
    for node in targets:
        for i in (0, 1):
            dq = prod.get(node.input[i])
            assert dq is not None and dq.op_type == "DequantizeLinear", f"{node.name} input {i} is not dequantised"
        # Weight: int8 initializer -> DequantizeLinear, scales per output channel.
        wdq = prod[node.input[1]]
        q = inits[wdq.input[0]]
        scale = inits[wdq.input[1]]
        assert q.dtype == np.int8 and q.min() >= -127
        axis = {a.name: a.i for a in wdq.attribute}.get("axis")
        if per_channel:
            want_axis = 0 if node.op_type == "Conv" else 1  # MatMul B is (K, N): per column
            assert axis == want_axis
            assert scale.shape == (q.shape[want_axis],)
        else:
            assert axis is None and scale.shape == ()
        # Activation: fed through Q -> DQ with one scale.
        adq = prod[node.input[0]]
        assert inits[adq.input[1]].shape == ()
        assert prod.get(adq.input[0]) is None or prod[adq.input[0]].op_type == "QuantizeLinear"
    # Conv biases stay fp32; the fp32 weights are gone from the file.
    conv_w = [k for k, v in fp32.items() if v.ndim == 4]
    assert conv_w and not set(conv_w) & set(inits)
    assert any(v.dtype == np.float32 and v.ndim == 1 and v.size == 16 for v in inits.values())
    assert report.int8_bytes < report.fp32_bytes
    assert _run(out, calib[:1]).shape == (1, len(COLOURS), SIZE, SIZE)


def test_int8_weights_within_half_a_step(trained_onnx, tmp_path):
    out = tmp_path / "int8.onnx"
    quantize(trained_onnx, out, preprocess(synthetic(2, seed=3)[0]), method="minmax", progress=False)
    model = onnx.load(str(out))
    inits, fp32 = _initializers(model), _initializers(onnx.load(str(trained_onnx)))
    checked = 0
    for n in model.graph.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in inits and inits[n.input[0]].ndim == 4:
            name = n.input[0][: -len("_int8")]
            w, q, s = fp32[name], inits[n.input[0]].astype(np.float32), inits[n.input[1]]
            s = s.reshape(-1, 1, 1, 1)
            assert np.all(np.abs(q * s - w) <= s / 2 * (1 + 1e-5)), name
            # Each channel uses its whole range: its largest weight maps to +-127.
            assert np.all(np.abs(q).reshape(len(q), -1).max(axis=1) == 127)
            checked += 1
    assert checked == 3


def test_quantize_weight_axes():
    w = np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 12
    q, s = quantize_weight(w, 1)
    assert s.shape == (3,) and q.dtype == np.int8
    np.testing.assert_allclose(s, np.abs(w).max(axis=(0, 2)) / 127)
    q, s = quantize_weight(np.zeros((3, 2), np.float32), 0)
    assert (s == 1).all() and not q.any()


@pytest.mark.parametrize("method", ["minmax", "percentile", "entropy"])
def test_int8_argmax_agrees_with_fp32(trained_onnx, tmp_path, method):
    calib = preprocess(synthetic(16, seed=10)[0])
    val_imgs, val_labels = synthetic(8, seed=20)
    val = preprocess(val_imgs)
    out = tmp_path / f"{method}.onnx"
    report = quantize(trained_onnx, out, calib, method=method, validation=[(val, val_labels)], progress=False)
    # Independently of the report: run both models on the validation images.
    l32 = np.concatenate([_run(trained_onnx, val[i:i + 1]) for i in range(len(val))])
    l8 = np.concatenate([_run(out, val[i:i + 1]) for i in range(len(val))])
    agreement = float((l32.argmax(1) == l8.argmax(1)).mean())
    assert agreement >= 0.98, f"{method}: int8 argmax agrees with fp32 on only {agreement:.4f} of pixels"
    # The argmax of this easy task survives coarse scales too; the logits do not. Measured:
    # ~0.006 of the logits' spread with int8; 0.05 with 10x too coarse activation scales,
    # 0.014 with weights 3 bits short.
    err = float(np.abs(l8 - l32).mean() / l32.std())
    assert err < 0.01, f"{method}: mean |int8 - fp32| logit error is {err:.4f} of their spread"
    assert report.pixel_agreement == pytest.approx(agreement)
    assert report.method == method
    assert report.calibration_images == 16 and report.validation_images == 8
    assert report.to_dict()["num_thresholds"] == 4 == len(report.thresholds)
    assert 0.9 <= report.miou <= 1.0 and report.miou_delta == pytest.approx(
        report.miou_int8_labels - report.miou_fp32_labels)
    assert report.miou_fp32_labels > 0.9
    if method != "minmax":
        # The clipping methods must actually clip somewhere.
        mm = quantize(trained_onnx, tmp_path / "mm.onnx", calib, method="minmax", progress=False)
        assert any(report.thresholds[k] < mm.thresholds[k] for k in mm.thresholds)


# --- threshold methods ------------------------------------------------------------------


def _hist(x, chunks=4):
    h = calibrate.Histogram()
    for part in np.array_split(np.asarray(x, dtype=np.float32), chunks):
        h.update(part)
    return h


def test_histogram_grows_without_losing_counts():
    h = calibrate.Histogram(bins=256)
    h.update(np.r_[np.full(10, 0.5), 1.0])
    h.update(np.array([3.0, -7.0]))
    assert h.amax == 7.0 and h.range >= 7.0 and h.total == 13
    # The 0.5s stay in the bin that covers 0.5.
    assert h.counts[int(0.5 / h.width)] == 10
    with pytest.raises(ValueError, match="bins"):
        calibrate.Histogram(bins=100)
    with pytest.raises(ValueError, match="NaN"):
        h.update(np.array([np.nan]))


def test_minmax_is_max_abs():
    x = np.random.default_rng(0).normal(size=5000)
    x[123] = -9.5
    assert calibrate.threshold(_hist(x), "minmax") == pytest.approx(9.5)


def test_percentile_of_uniform():
    x = np.random.default_rng(1).uniform(-2, 2, 400_000)
    assert calibrate.threshold(_hist(x), "percentile") == pytest.approx(2 * 0.9999, abs=2e-3)
    assert calibrate.threshold(_hist(x), "percentile", percentile=90.0) == pytest.approx(1.8, abs=5e-3)
    with pytest.raises(ValueError, match="percentile"):
        calibrate.percentile_threshold(_hist(x), 0)


def test_entropy_clips_heavy_tails_but_not_uniform():
    rng = np.random.default_rng(2)
    lap = np.concatenate([rng.laplace(0, 1, 200_000), [300.0, -250.0, 280.0]])
    t = calibrate.threshold(_hist(lap), "entropy")
    assert 3.0 < t < 0.2 * 300.0
    uni = rng.uniform(-1, 1, 200_000)
    assert calibrate.threshold(_hist(uni), "entropy") > 0.97
    # The zero spike after a ReLU must not drag the cut down.
    relu = np.maximum(rng.normal(0, 1, 200_000), 0)
    assert calibrate.threshold(_hist(relu), "entropy") > 2.5


# --- calibration inputs ------------------------------------------------------------------


def _write_pngs(folder, imgs):
    from PIL import Image

    folder.mkdir()
    paths = []
    for i, im in enumerate(imgs):
        p = folder / f"img{i:02d}.png"
        Image.fromarray(im).save(p)
        paths.append(p)
    return paths


def test_calibration_from_png_folder_and_paths(trained_onnx, tmp_path):
    big, _ = synthetic(3, seed=30, size=48)
    small, _ = synthetic(1, seed=31, size=20)
    paths = _write_pngs(tmp_path / "imgs", list(big) + list(small))
    ref = np.stack([normalize(calib_data.fit_image(im, SIZE, SIZE)) for im in list(big) + list(small)])
    r_dir = quantize(trained_onnx, tmp_path / "a.onnx", tmp_path / "imgs", method="minmax", progress=False)
    r_list = quantize(trained_onnx, tmp_path / "b.onnx", [str(p) for p in paths], method="minmax", progress=False)
    r_arr = quantize(trained_onnx, tmp_path / "c.onnx", ref, method="minmax", progress=False)
    assert r_dir.calibration_images == r_list.calibration_images == 4
    for k, v in r_arr.thresholds.items():
        assert r_dir.thresholds[k] == pytest.approx(v, rel=1e-5)
        assert r_list.thresholds[k] == pytest.approx(v, rel=1e-5)
    with pytest.raises(FileNotFoundError, match="calibration"):
        quantize(trained_onnx, tmp_path / "d.onnx", [paths[0], tmp_path / "nope.png"], progress=False)


def test_fit_image_crops_centre_and_covers():
    img = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
    np.testing.assert_array_equal(calib_data.fit_image(img, 4, 4), img[1:5, 2:6])
    up = calib_data.fit_image(img, 12, 10)
    assert up.shape == (12, 10, 3)
    flat = np.full((3, 5, 3), 7, np.uint8)
    np.testing.assert_allclose(calib_data.fit_image(flat, 6, 6), 7.0)


def test_calibration_from_tensors_tuples_and_generators(trained_onnx, tmp_path):
    imgs, labels = synthetic(6, seed=40)
    x = preprocess(imgs)
    r_arr = quantize(trained_onnx, tmp_path / "a.onnx", x, method="minmax", progress=False)
    loader = [torch.from_numpy(x[i:i + 2]) for i in range(0, 6, 2)]
    r_t = quantize(trained_onnx, tmp_path / "b.onnx", loader, method="minmax", progress=False)
    pairs = [(torch.from_numpy(x[i:i + 3]), torch.from_numpy(labels[i:i + 3])) for i in (0, 3)]
    r_xy = quantize(trained_onnx, tmp_path / "c.onnx", pairs, method="minmax", progress=False)
    gen = (x[i:i + 1] for i in range(6))  # one-shot: validation must reuse what calibration read
    r_gen = quantize(trained_onnx, tmp_path / "d.onnx", gen, method="minmax", progress=True)
    for r in (r_t, r_xy, r_gen):
        assert r.calibration_images == r.validation_images == 6
        for k, v in r_arr.thresholds.items():
            assert r.thresholds[k] == pytest.approx(v, rel=1e-6)
    assert r_xy.miou_fp32_labels is not None and r_arr.miou_fp32_labels is None
    r_cap = quantize(trained_onnx, tmp_path / "e.onnx", loader, method="minmax", max_images=3, progress=False)
    assert r_cap.calibration_images == 3


def test_batches_regroup_to_static_batch():
    spec = calib_data.InputSpec("x", 3, 2, 4, 4)
    x = np.random.default_rng(0).normal(size=(7, 2, 4, 4)).astype(np.float32)
    out = list(calib_data.batches([x[:2], x[2:7]], spec, mean=None, std=None))
    assert [len(b) for b, _, _ in out] == [3, 3, 3] and [n for _, _, n in out] == [3, 3, 1]
    np.testing.assert_array_equal(np.concatenate([b[:n] for b, _, n in out]), x)


def test_bad_arguments(trained_onnx, tmp_path):
    x = preprocess(synthetic(2, seed=50)[0])
    with pytest.raises(ValueError, match="calibration"):
        quantize(trained_onnx, tmp_path / "a.onnx", [], progress=False)
    with pytest.raises(ValueError, match="calibration"):
        quantize(trained_onnx, tmp_path / "a.onnx", iter([]), progress=False)
    with pytest.raises(ValueError, match="calibration"):
        quantize(trained_onnx, tmp_path / "a.onnx", np.zeros((0, 3, SIZE, SIZE), np.float32), progress=False)
    with pytest.raises(ValueError, match="calibration"):
        quantize(trained_onnx, tmp_path / "a.onnx", np.zeros((2, 3, 16, 16), np.float32), progress=False)
    with pytest.raises(TypeError, match="calibration"):
        quantize(trained_onnx, tmp_path / "a.onnx", 42, progress=False)
    with pytest.raises(ValueError, match="method.*entropy.*percentile.*minmax"):
        quantize(trained_onnx, tmp_path / "a.onnx", x, method="kl", progress=False)
    with pytest.raises(FileNotFoundError, match="onnx_path"):
        quantize(tmp_path / "missing.onnx", tmp_path / "a.onnx", x, progress=False)
    with pytest.raises(ValueError, match="out_path"):
        quantize(trained_onnx, trained_onnx, x, progress=False)
    with pytest.raises(ValueError, match="max_images"):
        quantize(trained_onnx, tmp_path / "a.onnx", x, max_images=0, progress=False)


# --- hand-built graphs: Gemm, ConvTranspose, Constant weights, class-map outputs ---------------


def _handmade(path, argmax=False):
    rng = np.random.default_rng(0)
    w_conv = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    w_up = rng.normal(size=(4, 3, 2, 2)).astype(np.float32)  # ConvTranspose: (C_in, C_out, kH, kW)
    w_gemm = rng.normal(size=(5, 4)).astype(np.float32)  # transB=1: (N, K)
    nodes = [
        helper.make_node("Constant", [], ["wc"], value=numpy_helper.from_array(w_conv)),
        helper.make_node("Conv", ["x", "wc"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("ConvTranspose", ["r", "wu"], ["u"], strides=[2, 2]),  # (1, 3, 8, 8)
        helper.make_node("ReduceMean", ["r"], ["m"], axes=[2, 3], keepdims=0),  # (1, 4)
        helper.make_node("Gemm", ["m", "wg", "bg"], ["g"], transB=1),  # (1, 5)
        helper.make_node("Unsqueeze", ["g", "ax"], ["g4"]),  # (1, 5, 1, 1)
        helper.make_node("ReduceSum", ["u", "ax1"], ["u_sum"], keepdims=1),  # (1, 1, 8, 8)
        helper.make_node("Mul", ["g4", "u_sum"], ["logits"]),  # (1, 5, 8, 8)
    ]
    out = "logits"
    if argmax:
        nodes.append(helper.make_node("ArgMax", ["logits"], ["cls"], axis=1, keepdims=0))
        out = "cls"
    graph = helper.make_graph(
        nodes, "handmade",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info(out, TensorProto.INT64, [1, 8, 8]) if argmax
         else helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, 5, 8, 8])],
        initializer=[numpy_helper.from_array(w_up, "wu"), numpy_helper.from_array(w_gemm, "wg"),
                     numpy_helper.from_array(np.zeros(5, np.float32), "bg"),
                     numpy_helper.from_array(np.array([2, 3], np.int64), "ax"),
                     numpy_helper.from_array(np.array([1], np.int64), "ax1")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


@pytest.mark.parametrize("argmax", [False, True])
def test_handmade_graph_axes_and_class_map_output(tmp_path, argmax):
    src = tmp_path / "hand.onnx"
    _handmade(src, argmax=argmax)
    x = np.random.default_rng(1).normal(size=(6, 3, 4, 4)).astype(np.float32)
    report = quantize(src, tmp_path / "q.onnx", x, method="percentile", progress=False)
    model = onnx.load(str(tmp_path / "q.onnx"))
    inits, prod = _initializers(model), _producers(model)
    axes = {}
    for n in model.graph.node:
        if n.op_type in ("Conv", "ConvTranspose", "Gemm"):
            dq = prod[n.input[1]]
            assert dq.op_type == "DequantizeLinear" and inits[dq.input[0]].dtype == np.int8
            assert prod[n.input[0]].op_type == "DequantizeLinear"
            axes[n.op_type] = ({a.name: a.i for a in dq.attribute}["axis"], inits[dq.input[1]].shape)
            if n.op_type == "Gemm":
                assert n.input[2] == "bg"  # bias stays fp32
    assert axes == {"Conv": (0, (4,)), "ConvTranspose": (1, (3,)), "Gemm": (0, (5,))}
    assert not any(n.op_type == "Constant" for n in model.graph.node), "the fp32 Constant weight was left behind"
    assert report.quantized_nodes == 3 and report.validation_images == 6
    assert 0.0 <= report.pixel_agreement <= 1.0




def _attention_like(path, opset=13):
    """Conv -> an activation x activation MatMul (as in attention or the chunked scan) -> a weight MatMul."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Conv", ["x", "wc"], ["c"], name="conv"),  # (1, 4, 4, 4)
        helper.make_node("Reshape", ["c", "s3"], ["r"]),  # (1, 4, 16)
        helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1]),  # (1, 16, 4)
        helper.make_node("MatMul", ["r", "t"], ["a"], name="gram"),  # (1, 4, 4)
        helper.make_node("MatMul", ["a", "wm"], ["b"], name="proj"),  # (1, 4, 4)
        helper.make_node("Reshape", ["b", "s4"], ["logits"]),  # (1, 4, 2, 2)
    ]
    graph = helper.make_graph(
        nodes, "attention_like",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4, 2, 2])],
        initializer=[numpy_helper.from_array(rng.normal(size=(4, 3, 1, 1)).astype(np.float32), "wc"),
                     numpy_helper.from_array(rng.normal(size=(4, 4)).astype(np.float32), "wm"),
                     numpy_helper.from_array(np.array([1, 4, 16], np.int64), "s3"),
                     numpy_helper.from_array(np.array([1, 4, 2, 2], np.int64), "s4")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8), str(path))


@pytest.mark.parametrize(("kwargs", "quantized"), [
    ({}, {"conv", "gram", "proj"}),
    ({"activation_matmuls": False}, {"conv", "proj"}),
    ({"exclude": ["pro*"]}, {"conv", "gram"}),
    ({"exclude": "conv", "activation_matmuls": False}, {"proj"}),
])
def test_exclude_and_activation_matmuls(tmp_path, kwargs, quantized):
    _attention_like(tmp_path / "a.onnx")
    x = np.random.default_rng(1).normal(size=(3, 3, 4, 4)).astype(np.float32)
    report = quantize(tmp_path / "a.onnx", tmp_path / "q.onnx", x, method="minmax", progress=False, **kwargs)
    model = onnx.load(str(tmp_path / "q.onnx"))
    prod = _producers(model)
    fed = {n.name for n in model.graph.node if n.op_type in ("Conv", "MatMul")
           and all(i in prod and prod[i].op_type == "DequantizeLinear" for i in n.input[:2])}
    untouched = {n.name for n in model.graph.node if n.op_type in ("Conv", "MatMul")
                 and not any(i in prod and prod[i].op_type == "DequantizeLinear" for i in n.input[:2])}
    assert fed == quantized and untouched == {"conv", "gram", "proj"} - quantized
    assert report.quantized_nodes == len(quantized)


def test_old_opset_is_raised_to_13(tmp_path):
    _attention_like(tmp_path / "a.onnx", opset=11)
    x = np.random.default_rng(2).normal(size=(2, 3, 4, 4)).astype(np.float32)
    quantize(tmp_path / "a.onnx", tmp_path / "q.onnx", x, method="minmax", progress=False)
    model = onnx.load(str(tmp_path / "q.onnx"))
    assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 13
    assert any(a.name == "axis" for n in model.graph.node if n.op_type == "DequantizeLinear" for a in n.attribute)
    y8, y32 = _run(tmp_path / "q.onnx", x[:1]), _run(tmp_path / "a.onnx", x[:1])
    # The Gram product spans a wide range with one per-tensor scale: a few % of it is expected.
    assert np.abs(y8 - y32).max() < 0.1 * np.abs(y32).max()
