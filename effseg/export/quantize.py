"""INT8 post-training quantisation of an ONNX model as explicit QuantizeLinear/DequantizeLinear.

TensorRT builds INT8 engines from explicit quantisation: Q/DQ pairs in the ONNX graph
say which tensors are int8 and with what scale, and TensorRT fuses them into int8
kernels. TensorRT 11 builds INT8 only this way (its networks are always strongly typed;
the INT8 builder flag and the implicit-calibration API are gone), and its ONNX parser
takes Q/DQ only with a zero-point of 0, i.e. symmetric int8 (see /work/shared/REFERENCE.md,
"ONNX and TensorRT" and "TensorRT's ONNX parser"). So this module writes: on every
activation input of Conv, ConvTranspose, MatMul and Gemm (the layers TensorRT runs in
int8) a QuantizeLinear -> DequantizeLinear pair, int8 with zero-point 0 and scale =
threshold / 127, the threshold calibrated on user images (effseg.export.calibrate); and
their constant weights as int8 initializers followed by a DequantizeLinear, one scale
per output channel (or per tensor), biases left in fp32. The same file runs quantised
in ONNX Runtime on the CPU, which is how it is checked here.
"""
from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..runtime.images import IMAGENET_MEAN, IMAGENET_STD
from ..runtime.sessions import ort_session
from . import calib_data, calibrate

# Op type -> the inputs that are quantised (bias inputs stay fp32).
QUANTIZED_INPUTS = {"Conv": (0, 1), "ConvTranspose": (0, 1), "MatMul": (0, 1), "Gemm": (0, 1)}
TARGETS = ("tensorrt", "cpu")
DEFAULT_METHOD = {"tensorrt": "entropy", "cpu": "minmax"}  # see quantize's `method`
MIN_OPSET = 13  # DequantizeLinear's `axis` (per-channel scales) arrives in opset 13
_FLOAT = 1  # onnx.TensorProto.FLOAT


@dataclass
class QuantReport:
    """What `quantize` did and how close the int8 model stays to the fp32 one.

    `miou` takes the fp32 argmax as ground truth (so the fp32 model scores 1.0);
    `miou_delta` is the int8 minus the fp32 mIoU: against labels when the validation
    data carried them ((x, y) pairs), else `miou - 1`.
    """
    method: str
    calibration_images: int
    quantized_nodes: int
    thresholds: dict = field(repr=False)
    fp32_bytes: int
    int8_bytes: int
    validation_images: int
    pixel_agreement: float
    miou: float
    miou_delta: float
    miou_fp32_labels: float | None = None
    miou_int8_labels: float | None = None
    out_path: str = ""
    target: str = "tensorrt"
    # target="cpu": ORT's optimised graph, {"integer": integer kernels, "float": fp32
    # Conv/MatMul/Gemm left}; speed: {"fp32_ms", "int8_ms", "speedup"} when measured.
    kernels: dict | None = None
    speed: dict | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["num_thresholds"] = len(self.thresholds)
        return d


def _onnx():
    try:
        import onnx
        import onnx.inliner
        import onnx.version_converter
        import onnxruntime
    except ImportError as exc:
        raise RuntimeError("INT8 quantisation needs onnx and onnxruntime: pip install 'effseg[export]'") from exc
    return onnx, onnxruntime


# --- graph analysis -------------------------------------------------------------------

def _input_spec(model) -> calib_data.InputSpec:
    init = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in init]
    if len(inputs) != 1:
        raise ValueError(f"onnx_path: quantize handles models with one input; this one has "
                         f"{[i.name for i in inputs]}")
    i = inputs[0]
    if i.type.tensor_type.elem_type != _FLOAT:
        raise ValueError(f"onnx_path: input {i.name!r} must be float32 (quantise the fp32 export)")
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
            for d in i.type.tensor_type.shape.dim]
    if len(dims) != 4:
        raise ValueError(f"onnx_path: input {i.name!r} must be (N, C, H, W); it has rank {len(dims)}")
    return calib_data.InputSpec(i.name, *dims)


def _constants(model) -> dict:
    """Name -> numpy value of every float initializer and Constant-node output."""
    from onnx import numpy_helper

    out = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer if t.data_type == _FLOAT}
    for n in model.graph.node:
        if (n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"
                and n.attribute[0].t.data_type == _FLOAT):
            out[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    return out


def _float_types(model) -> dict:
    """Name -> True/False (float32 or not) where shape inference knows the element type."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except (onnx.shape_inference.InferenceError, ValueError):  # inference is only a filter here; without it every tensor is tried
        inferred = model
    g = inferred.graph
    return {v.name: v.type.tensor_type.elem_type == _FLOAT
            for v in list(g.value_info) + list(g.input) + list(g.output)
            if v.type.tensor_type.elem_type}


def _weight_axis(node, index: int, ndim: int) -> int | None:
    """The output-channel axis of a weight input (None: per-tensor only)."""
    attrs = {a.name: a.i for a in node.attribute if a.type == 2}  # INT attributes
    if node.op_type == "Conv":
        return 0 if ndim >= 2 else None
    if node.op_type == "ConvTranspose":
        # (C_in, C_out / group, kH, kW): axis 1 is one scale per output channel only
        # when there is a single group.
        return 1 if ndim >= 2 and attrs.get("group", 1) == 1 else None
    if ndim < 2:
        return None
    if node.op_type == "MatMul":
        return ndim - 1 if index == 1 else ndim - 2  # columns of B, rows of A
    if node.op_type == "Gemm":
        trans = attrs.get("transB" if index == 1 else "transA", 0)
        return (0 if trans else 1) if index == 1 else (1 if trans else 0)
    return None


def _plan(model, exclude=(), activation_matmuls: bool = True):
    """[(node, input index, tensor name, 'weight'|'activation')] for every quantised input."""
    consts = _constants(model)
    is_float = _float_types(model)
    plan = []
    for node in model.graph.node:
        wanted = QUANTIZED_INPUTS.get(node.op_type, ())
        if not wanted or any(fnmatch.fnmatchcase(node.name, pat) for pat in exclude):
            continue
        inputs = [node.input[i] for i in wanted if i < len(node.input) and node.input[i]]
        if not activation_matmuls and node.op_type in ("MatMul", "Gemm") and not any(i in consts for i in inputs):
            continue
        for idx in wanted:
            if idx >= len(node.input) or not node.input[idx]:
                continue
            name = node.input[idx]
            if name in consts:
                plan.append((node, idx, name, "weight"))
            elif is_float.get(name, True):
                plan.append((node, idx, name, "activation"))
    return plan, consts


# --- calibration ------------------------------------------------------------------------

class _Cache(list):
    """Calibration batches kept for validation when the calibration data is one-shot."""


def _progress(it, desc: str, total, enabled: bool):
    """Yield the (x, y, n) batches of `it`, counting images on a tqdm bar when there is one."""
    bar = None
    if enabled:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            pass
        else:
            bar = tqdm(desc=desc, total=total, unit="img")
    try:
        for item in it:
            yield item
            if bar is not None:
                bar.update(item[2])
    finally:
        if bar is not None:
            bar.close()


def _collect(model, spec, activations, data, *, mean, std, max_images, progress, cache):
    """Histograms of every activation in `activations`, from fp32 runs of `model`."""
    import onnx

    _, ort = _onnx()
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    present = {o.name for o in probe.graph.output}
    fetch = [a for a in activations if a != spec.name]
    for name in fetch:
        if name not in present:
            probe.graph.output.append(onnx.helper.make_tensor_value_info(name, _FLOAT, None))
    sess = ort_session(probe)
    hists = {a: calibrate.Histogram() for a in activations}
    images = 0
    it = calib_data.batches(data, spec, mean=mean, std=std, max_images=max_images, name="calibration")
    for x, y, n in _progress(it, "calibrating", calib_data.size_hint(data, max_images), progress):
        if cache is not None:
            cache.append((x, y, n))
        images += n
        outs = sess.run(fetch, {spec.name: x}) if fetch else []
        for name, value in zip(fetch, outs):
            hists[name].update(value)
        if spec.name in hists:
            hists[spec.name].update(x[:n])
    return hists, images


# --- rewrite ------------------------------------------------------------------------------

class _Names:
    def __init__(self, model):
        g = model.graph
        self.used = {t.name for t in g.initializer} | {v.name for v in g.input} | {v.name for v in g.output}
        for n in g.node:
            self.used.update(n.input)
            self.used.update(n.output)
            self.used.add(n.name)

    def new(self, base: str) -> str:
        name, k = base, 1
        while name in self.used:
            name, k = f"{base}_{k}", k + 1
        self.used.add(name)
        return name


def quantize_weight(w: np.ndarray, axis: int | None):
    """Symmetric int8 weights: (int8 values, float32 scales); one scale per index of `axis`."""
    w = np.asarray(w, dtype=np.float32)
    if axis is None:
        amax = np.array(np.abs(w).max() if w.size else 0.0, dtype=np.float32)
        shape = ()
    else:
        amax = np.abs(np.moveaxis(w, axis, 0)).reshape(w.shape[axis], -1).max(axis=1)
        shape = [1] * w.ndim
        shape[axis] = -1
    # An all-zero channel quantises to 0 with any scale; 1 keeps the scale positive.
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.rint(w / scale.reshape(shape)), -127, 127).astype(np.int8)
    return q, scale


def _rewrite(model, plan, consts, thresholds, per_channel: bool):
    """Insert the Q/DQ pairs and int8 weights; returns the number of quantised nodes."""
    from onnx import helper, numpy_helper

    g = model.graph
    names = _Names(model)
    before = {}  # id(node) -> nodes to insert before it
    done = {}  # (tensor, axis) or tensor -> dequantised tensor name
    replaced_weights = set()
    touched = set()

    def init(name, array):
        g.initializer.append(numpy_helper.from_array(array, name))

    for node, idx, tensor, kind in plan:
        if kind == "weight":
            w = consts[tensor]
            axis = _weight_axis(node, idx, w.ndim) if per_channel else None
            key = (tensor, axis)
            if key not in done:
                q, scale = quantize_weight(w, axis)
                qn, sn, zn = names.new(f"{tensor}_int8"), names.new(f"{tensor}_scale"), names.new(f"{tensor}_zp")
                init(qn, q)
                init(sn, scale)
                init(zn, np.zeros(scale.shape, dtype=np.int8))
                out = names.new(f"{tensor}_dq")
                attrs = {} if axis is None else {"axis": axis}
                dq = helper.make_node("DequantizeLinear", [qn, sn, zn], [out], name=names.new(f"{tensor}_DQ"), **attrs)
                before.setdefault(id(node), []).append(dq)
                done[key] = out
                replaced_weights.add(tensor)
            node.input[idx] = done[key]
        else:
            if tensor not in done:
                t = max(float(thresholds[tensor]), 0.0)
                # A tensor that was zero on every calibration image gets scale 1/127:
                # any positive scale represents it, and a zero scale is invalid.
                scale = np.array((t if t > 0 else 1.0) / 127.0, dtype=np.float32)
                sn, zn = names.new(f"{tensor}_scale"), names.new(f"{tensor}_zp")
                init(sn, scale)
                init(zn, np.array(0, dtype=np.int8))
                qo, dqo = names.new(f"{tensor}_q"), names.new(f"{tensor}_dq")
                before.setdefault(id(node), []).extend([
                    helper.make_node("QuantizeLinear", [tensor, sn, zn], [qo], name=names.new(f"{tensor}_Q")),
                    helper.make_node("DequantizeLinear", [qo, sn, zn], [dqo], name=names.new(f"{tensor}_DQ")),
                ])
                done[tensor] = dqo
            node.input[idx] = done[tensor]
        touched.add(id(node))

    nodes = []
    for node in g.node:
        nodes.extend(before.get(id(node), []))
        nodes.append(node)
    del g.node[:]
    g.node.extend(nodes)
    _drop_unused(model, replaced_weights)
    return len(touched)


def _drop_unused(model, candidates: set) -> None:
    """Remove the fp32 weights (initializers or Constant nodes) nothing reads any more."""
    g = model.graph
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    dead = candidates - used
    keep = [t for t in g.initializer if t.name not in dead]
    del g.initializer[:]
    g.initializer.extend(keep)
    keep_in = [i for i in g.input if i.name not in dead]
    del g.input[:]
    g.input.extend(keep_in)
    keep_nodes = [n for n in g.node if not (n.op_type == "Constant" and n.output[0] in dead)]
    del g.node[:]
    g.node.extend(keep_nodes)


# --- validation -------------------------------------------------------------------------

def _class_map(out: np.ndarray) -> np.ndarray:
    if np.issubdtype(out.dtype, np.floating):
        if out.ndim != 4:
            raise ValueError(f"model output must be logits (N, K, H, W) or a class map; got shape {out.shape}")
        return out.argmax(axis=1)
    return out.reshape(out.shape[0], *out.shape[-2:]) if out.ndim == 4 else out


def _confusion(pred, gt, k) -> np.ndarray:
    ok = (gt >= 0) & (gt < k) & (pred >= 0) & (pred < k)
    return np.bincount(k * gt[ok].astype(np.int64) + pred[ok].astype(np.int64), minlength=k * k).reshape(k, k)


def miou_from_confusion(cm: np.ndarray) -> float:
    """Mean IoU over the classes present in the ground truth or the prediction."""
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - tp
    present = union > 0
    return float((tp[present] / union[present]).mean()) if present.any() else 1.0


def _validate(fp32_path, int8_path, spec, data, *, mean, std, max_images, progress, name):
    _, ort = _onnx()
    s32, s8 = ort_session(fp32_path), ort_session(int8_path)
    out_name = s32.get_outputs()[0].name
    agree = total = images = 0
    cms = {}
    cached = isinstance(data, _Cache)
    it = data if cached else calib_data.batches(data, spec, mean=mean, std=std, max_images=max_images, name=name)
    total_hint = sum(n for _, _, n in data) if cached else calib_data.size_hint(data, max_images)
    for x, y, n in _progress(it, "validating", total_hint, progress):
        o32 = s32.run([out_name], {spec.name: x})[0][:n]
        o8 = s8.run([out_name], {spec.name: x})[0][:n]
        a32, a8 = _class_map(o32), _class_map(o8)
        k = int(o32.shape[1]) if np.issubdtype(o32.dtype, np.floating) else int(max(a32.max(), a8.max())) + 1
        agree += int((a32 == a8).sum())
        total += a32.size
        images += n
        pairs = {"int8_vs_fp32": (a8, a32)}
        if y is not None:
            y = np.asarray(y)[:n].reshape(a32.shape)
            pairs.update(fp32_labels=(a32, y), int8_labels=(a8, y))
        for key, (p, g) in pairs.items():
            cm = _confusion(p, g, k)
            prev = cms.get(key)
            if prev is not None and prev.shape != cm.shape:
                m = max(prev.shape[0], cm.shape[0])
                prev = np.pad(prev, ((0, m - prev.shape[0]),) * 2)
                cm = np.pad(cm, ((0, m - cm.shape[0]),) * 2)
            cms[key] = cm if prev is None else prev + cm
    miou = miou_from_confusion(cms["int8_vs_fp32"])
    labelled = "fp32_labels" in cms
    m32 = miou_from_confusion(cms["fp32_labels"]) if labelled else None
    m8 = miou_from_confusion(cms["int8_labels"]) if labelled else None
    return {"validation_images": images, "pixel_agreement": agree / max(total, 1), "miou": miou,
            "miou_delta": (m8 - m32) if labelled else miou - 1.0,
            "miou_fp32_labels": m32, "miou_int8_labels": m8}


def model_bytes(path) -> int:
    """Size of an ONNX file plus the external-data files its initializers point to."""
    import onnx

    path = Path(path)
    files = {path}
    proto = onnx.load(str(path), load_external_data=False)
    for t in proto.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            loc = next((e.value for e in t.external_data if e.key == "location"), None)
            if loc:
                files.add(path.parent / loc)
    return sum(f.stat().st_size for f in files if f.is_file())


def _save(model, dst: Path) -> None:
    import onnx

    dst.parent.mkdir(parents=True, exist_ok=True)
    if model.ByteSize() > 1_800_000_000:  # protobuf cannot serialise 2 GB in one message
        onnx.save(model, str(dst), save_as_external_data=True, location=dst.name + ".data")
    else:
        onnx.save(model, str(dst))


# --- the entry point --------------------------------------------------------------------------

def quantize(onnx_path, out_path, calibration, *, method: str | None = None, mean=IMAGENET_MEAN,
             std=IMAGENET_STD, validation=None, per_channel: bool = True, max_images: int | None = None,
             progress: bool = True, percentile: float = 99.99, exclude=(),
             activation_matmuls: bool | None = None, target: str = "tensorrt",
             compare_speed: bool = False) -> QuantReport:
    """Write an INT8 (explicit Q/DQ) copy of the fp32 ONNX model at `onnx_path` to `out_path`.

    calibration: image folder or path, list of image paths, preprocessed (N, C, H, W)
        float32 array, or an iterable of such batches (numpy or torch; (x, y) pairs give x)
        -- see effseg.export.calib_data for how images are fitted and normalised.
    method: "entropy" (Migacz's KL search), "percentile" (`percentile` of |x|) or "minmax";
        None: "entropy" for target "tensorrt", "minmax" for "cpu" (there entropy's clipping
        of both sides of every Add/Mul/Concat output cost agreement: banet at 128x128,
        4 synthetic calibration images, 82% argmax agreement with fp32 against 96% with
        minmax; the tensorrt placement gives 96% with either).
    mean, std: per-channel normalisation of image files, in 0-255 units.
    validation: data in the same forms to measure agreement on; None reuses calibration
        (a one-shot iterator's batches are then kept in memory for the second pass).
    per_channel: one weight scale per output channel (else one per tensor).
    max_images: use at most this many calibration (and validation) samples.
    progress: tqdm bars when tqdm is installed.
    percentile: the percentile of |x| that method="percentile" takes.
    exclude: node names (fnmatch patterns) to leave in fp32.
    activation_matmuls: also quantise MatMul/Gemm nodes with no constant input (attention
        products, the chunked selective scan); False keeps those in fp32, where int8's
        single per-tensor scale may not hold their dynamic range. None: True for
        "tensorrt", False for "cpu" (there it would also quantise the Softmax before them,
        and ONNX Runtime's int8 Softmax is far slower than its fp32 one).
    target: "tensorrt" (symmetric int8 Q/DQ on Conv/MatMul inputs, what TensorRT fuses) or
        "cpu" (the placement ONNX Runtime's x86 integer kernels need: uint8 asymmetric
        activations, Q/DQ around every quantised op; see effseg.export.quantize_cpu). TensorRT
        rejects the "cpu" file; ONNX Runtime runs the "tensorrt" one mostly in fp32.
    compare_speed: target="cpu" only: time fp32 against int8 in ONNX Runtime on one
        calibration batch (report.speed), so an export can say when INT8 does not pay.
    """
    onnx, _ = _onnx()
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(map(repr, TARGETS))}; got {target!r}")
    if method is None:
        method = DEFAULT_METHOD[target]
    calibrate.check_method(method)
    if compare_speed and target != "cpu":
        raise ValueError("compare_speed applies to target='cpu' only (ONNX Runtime runs the 'tensorrt' "
                         "placement mostly in fp32)")
    if not 0.0 < percentile <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    src = Path(onnx_path)
    if not src.is_file():
        raise FileNotFoundError(f"onnx_path {str(src)!r} does not exist")
    dst = Path(out_path)
    if dst.resolve() == src.resolve():
        raise ValueError("out_path must differ from onnx_path (the fp32 model is kept for comparison)")
    model = onnx.load(str(src))
    if model.functions:
        model = onnx.inliner.inline_local_functions(model)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < MIN_OPSET:
        try:
            model = onnx.version_converter.convert_version(model, MIN_OPSET)
        except Exception as exc:
            raise ValueError(f"onnx_path: opset {opset} is below {MIN_OPSET} (needed for per-channel "
                             f"DequantizeLinear) and could not be converted: {exc}") from exc
    spec = _input_spec(model)
    if isinstance(exclude, str):
        exclude = (exclude,)
    if target == "cpu":
        from .quantize_cpu import quantize_for_cpu

        return quantize_for_cpu(model, src, dst, calibration, method=method, mean=mean, std=std,
                                validation=validation, per_channel=per_channel, max_images=max_images,
                                progress=progress, percentile=percentile, exclude=tuple(exclude),
                                activation_matmuls=bool(activation_matmuls), compare_speed=compare_speed)
    plan, consts = _plan(model, tuple(exclude), True if activation_matmuls is None else activation_matmuls)
    if not plan:
        raise ValueError(f"onnx_path: no Conv, ConvTranspose, MatMul or Gemm to quantise in {src.name}")
    activations = list(dict.fromkeys(t for _, _, t, kind in plan if kind == "activation"))

    cache = _Cache() if validation is None and not calib_data.is_reiterable(calibration) else None
    hists, images = _collect(model, spec, activations, calibration, mean=mean, std=std,
                             max_images=max_images, progress=progress, cache=cache)
    thresholds = {a: calibrate.threshold(h, method, percentile=percentile) for a, h in hists.items()}

    count = _rewrite(model, plan, consts, thresholds, per_channel)
    onnx.checker.check_model(model, full_check=True)
    _save(model, dst)

    val = validation if validation is not None else (cache if cache is not None else calibration)
    metrics = _validate(src, dst, spec, val, mean=mean, std=std, max_images=max_images, progress=progress,
                        name="validation" if validation is not None else "calibration")
    return QuantReport(method=method, calibration_images=images, quantized_nodes=count, thresholds=thresholds,
                       fp32_bytes=model_bytes(src), int8_bytes=model_bytes(dst), out_path=str(dst),
                       **metrics)
