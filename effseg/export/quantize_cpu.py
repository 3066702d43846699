"""INT8 for ONNX Runtime on x86 CPUs: a Q/DQ placement that ORT turns into integer kernels.

The TensorRT placement (effseg.export.quantize, target="tensorrt") puts symmetric int8
Q/DQ pairs on the *inputs* of Conv/MatMul only, which is what TensorRT fuses. ONNX
Runtime's CPU provider fuses a compute node into an integer kernel (QLinearConv,
QLinearMatMul, ...) only when the node has DequantizeLinear on every input *and* a
QuantizeLinear on its output; the TensorRT graph has no Q after the Conv, so ORT runs
every Conv in fp32 behind a DequantizeLinear and the Q/DQ pairs are pure overhead
(0.5-0.8x fp32 speed). Its x86 integer kernels also want uint8 activations with int8
weights (U8S8: VPDPBUSD on VNNI CPUs), and an asymmetric uint8 range lets ORT fold a
ReLU/Clip into the QuantizeLinear before it.

So this target: runs ORT's own pre-processing (constant folding, BatchNorm folded into
Conv), calibrates every float tensor that a quantised node reads or writes with
effseg's histograms (each side of the range clipped at the method's |x| threshold), and
writes the QDQ graph with onnxruntime.quantization.quantize_static from those ranges
(no second calibration): uint8 asymmetric activations, int8 symmetric per-channel
weights. Left in fp32: ops whose ORT integer kernel is slower than fp32 on a CPU
(Softmax, AveragePool, Sigmoid, Resize), attention products (MatMul of two activations:
quantising them quantises the Softmax between them) and the classifier head (so logits
keep their precision). A ReduceMean over H and W becomes GlobalAveragePool.
The result has non-zero zero-points, which TensorRT rejects: it is a CPU-only file.
"""
from __future__ import annotations

import fnmatch
import inspect
import tempfile
from collections import Counter
from pathlib import Path

# Ops that get Q/DQ: those with an ORT integer kernel that beats fp32 (Conv, MatMul,
# Gemm, the elementwise Add/Mul and Concat between them) or that ORT drops the Q/DQ
# around (ReLU/Clip folded into the range, layout ops run on uint8 directly).
CPU_OP_TYPES = ("Conv", "ConvTranspose", "MatMul", "Gemm", "Add", "Mul", "Concat", "Relu", "Clip",
                "MaxPool", "Transpose", "Reshape")
# After ORT's optimisation: kernels that compute in integers ...
INTEGER_KERNELS = frozenset({
    "QLinearConv", "QLinearMatMul", "MatMulIntegerToFloat", "ConvInteger", "MatMulInteger", "QGemm",
    "QLinearAdd", "QLinearMul", "QLinearConcat", "QLinearSoftmax", "QLinearAveragePool",
    "QLinearGlobalAveragePool", "QLinearSigmoid", "QLinearLeakyRelu", "QLinearConvTranspose",
    "DynamicQuantizeMatMul"})
# ... and the float compute kernels that INT8 should have replaced.
FLOAT_KERNELS = frozenset({"Conv", "FusedConv", "NhwcFusedConv", "ConvTranspose", "MatMul", "FusedMatMul",
                           "Gemm", "FusedGemm"})


def _ort_quant():
    try:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.calibrate import TensorsData, save_tensors_data
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as exc:
        raise RuntimeError(f"target='cpu' needs onnxruntime's quantization tools: {exc}") from exc
    if "calibration_cache_path" not in inspect.signature(quantize_static).parameters:
        import onnxruntime

        raise RuntimeError(f"target='cpu' hands effseg's calibration ranges to onnxruntime through "
                           f"quantize_static(calibration_cache_path=...), which onnxruntime "
                           f"{onnxruntime.__version__} lacks: upgrade onnxruntime (1.32 has it)")
    return CalibrationMethod, QuantFormat, QuantType, quantize_static, TensorsData, save_tensors_data, \
        quant_pre_process


def preprocess(src: Path, dst: Path) -> None:
    """ORT's quantisation pre-processing: shape inference, constant folding, Conv+BN folding."""
    *_, quant_pre_process = _ort_quant()
    # Symbolic shape inference is for dynamic-shape transformers; ONNX's own inference
    # covers effseg's exports and needs no extra dependency.
    quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)


def excluded_nodes(model, patterns, activation_matmuls: bool) -> set:
    """Names of the nodes left in fp32: those matching `patterns`, the head (`head_nodes`)
    and, unless activation_matmuls, every MatMul/Gemm with no constant input (attention
    products): quantising its inputs quantises the Softmax before it, and ORT's
    QLinearSoftmax is far slower than its fp32 Softmax."""
    init = {t.name for t in model.graph.initializer} | {n.output[0] for n in model.graph.node
                                                        if n.op_type == "Constant"}
    out = {n.name for n in model.graph.node if any(fnmatch.fnmatchcase(n.name, p) for p in patterns)}
    if not activation_matmuls:
        out |= {n.name for n in model.graph.node
                if n.op_type in ("MatMul", "Gemm") and not any(i in init for i in n.input)}
    return out | head_nodes(model)


def head_nodes(model) -> set:
    """The last quantisable node on each path to a graph output (the classifier head).

    Kept fp32 so that the logits are not rounded to 256 levels: where two classes' logits
    are closer than one uint8 step the argmax would flip. It is one small Conv per output.
    """
    producer = {o: n for n in model.graph.node for o in n.output}
    heads, seen = set(), set()
    todo = [o.name for o in model.graph.output]
    while todo:
        t = todo.pop()
        n = producer.get(t)
        if n is None or id(n) in seen:
            continue
        seen.add(id(n))
        if n.op_type in CPU_OP_TYPES and n.op_type not in ("Transpose", "Reshape"):
            heads.add(n.name)
        else:  # Resize, ArgMax, layout ops: look through them
            todo.extend(i for i in n.input if i)
    return heads


def name_nodes(model) -> None:
    """Give every unnamed node a unique name: quantize_static excludes nodes by name."""
    used = {n.name for n in model.graph.node if n.name}
    for i, n in enumerate(model.graph.node):
        if not n.name:
            name, k = f"{n.op_type}_{i}", 0
            while name in used:
                name, k = f"{n.op_type}_{i}_{k}", k + 1
            n.name = name
            used.add(name)


def spatial_means_to_pooling(model) -> int:
    """Replace each ReduceMean over H and W of a 4-D tensor (keepdims) by GlobalAveragePool,
    which computes the same; returns how many.

    In ORT profiles of the QDQ graph such a ReduceMean (a channel-attention squeeze) took
    ~50 ms at 512x512 where the fp32 graph's took 0.2 ms; GlobalAveragePool runs fast in both.
    """
    import onnx
    from onnx import helper, numpy_helper

    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    rank = {v.name: len(v.type.tensor_type.shape.dim) for v in list(g.value_info) + list(g.input)
            if v.type.tensor_type.HasField("shape")}
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    count = 0
    for i, n in enumerate(model.graph.node):
        if n.op_type != "ReduceMean" or rank.get(n.input[0]) != 4:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        axes = attrs.get("axes")
        if axes is None and len(n.input) > 1 and n.input[1] in inits:
            axes = inits[n.input[1]].tolist()
        if attrs.get("keepdims", 1) != 1 or axes is None or sorted(a % 4 for a in axes) != [2, 3]:
            continue
        model.graph.node[i].CopyFrom(helper.make_node("GlobalAveragePool", [n.input[0]], list(n.output),
                                                      name=n.name))
        count += 1
    return count


def activation_tensors(model, is_float: dict, excluded=frozenset()) -> list:
    """Float tensors read or written by a node of CPU_OP_TYPES: the ones that need a range."""
    init = {t.name for t in model.graph.initializer}
    consts = {n.output[0] for n in model.graph.node if n.op_type == "Constant"}
    out = []
    for n in model.graph.node:
        if n.op_type not in CPU_OP_TYPES or n.name in excluded:
            continue
        for t in list(n.input) + list(n.output):
            if t and t not in init and t not in consts and is_float.get(t, False):
                out.append(t)
    return list(dict.fromkeys(out))


def write_qdq(model_path: Path, out_path: Path, ranges: dict, *, per_channel: bool,
              excluded=frozenset()) -> None:
    """The QDQ graph of the (pre-processed) model at model_path with the given (low, high)
    ranges; nodes named in `excluded` stay fp32."""
    import numpy as np

    CalibrationMethod, QuantFormat, QuantType, quantize_static, TensorsData, save_tensors_data, _ = _ort_quant()
    with tempfile.TemporaryDirectory(prefix="effseg-int8-cpu-") as tmp:
        cache = Path(tmp) / "ranges.json"
        data = {k: (np.float32(lo), np.float32(hi)) for k, (lo, hi) in ranges.items()}
        save_tensors_data(TensorsData(CalibrationMethod.MinMax, data), cache)
        quantize_static(str(model_path), str(out_path), None, calibration_cache_path=str(cache),
                        quant_format=QuantFormat.QDQ, op_types_to_quantize=list(CPU_OP_TYPES),
                        per_channel=per_channel, reduce_range=False, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, nodes_to_exclude=sorted(excluded),
                        calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})


def kernel_census(path, *, threads: int = 1) -> dict:
    """What ORT's CPU provider runs for the model at `path` after its full optimisation.

    {"integer": integer-kernel nodes, "float": float Conv/MatMul/Gemm nodes, "ops": {op: count}}:
    ORT writes the graph it will execute to optimized_model_filepath, so this counts the
    kernels without timing anything.
    """
    import onnx

    from ..runtime.sessions import import_ort

    ort = import_ort()
    with tempfile.TemporaryDirectory(prefix="effseg-census-") as tmp:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        so.intra_op_num_threads = threads
        so.log_severity_level = 3
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        ops = Counter(n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node)
    return {"integer": sum(c for op, c in ops.items() if op in INTEGER_KERNELS),
            "float": sum(c for op, c in ops.items() if op in FLOAT_KERNELS),
            "ops": dict(sorted(ops.items()))}


def speed_vs_fp32(fp32_path, int8_path, x, *, threads: int | None = None, rounds: int = 3,
                  repeats: int = 3) -> dict:
    """Median ONNX Runtime CPU latency of both files on input x, in interleaved rounds.

    A guide printed at export time (on whatever else the machine is doing), not a benchmark:
    bench/bench_int8.py measures properly.
    """
    import time

    import numpy as np

    from ..runtime.sessions import ort_session

    if rounds < 1 or repeats < 1:
        raise ValueError(f"rounds and repeats must be >= 1, got {rounds} and {repeats}")
    sessions = {k: ort_session(str(p), threads=threads) for k, p in (("fp32", fp32_path), ("int8", int8_path))}
    feeds = {k: {s.get_inputs()[0].name: x} for k, s in sessions.items()}
    for k, s in sessions.items():
        s.run(None, feeds[k])  # first run allocates
    times = {k: [] for k in sessions}
    for _ in range(rounds):
        for k, s in sessions.items():
            for _ in range(repeats):
                t0 = time.perf_counter()
                s.run(None, feeds[k])
                times[k].append((time.perf_counter() - t0) * 1e3)
    fp32_ms, int8_ms = (float(np.median(times[k])) for k in ("fp32", "int8"))
    return {"fp32_ms": round(fp32_ms, 3), "int8_ms": round(int8_ms, 3), "speedup": round(fp32_ms / int8_ms, 3)}


def quantize_for_cpu(model, src: Path, dst: Path, calibration, *, method, mean, std, validation,
                     per_channel, max_images, progress, percentile, exclude, activation_matmuls,
                     compare_speed):
    """quantize(target="cpu") after its argument checks; `model` is the loaded fp32 ModelProto."""
    import onnx

    from . import calib_data, calibrate
    from .quantize import QuantReport, _Cache, _collect, _float_types, _input_spec, _validate, model_bytes

    with tempfile.TemporaryDirectory(prefix="effseg-int8-cpu-") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        onnx.save(model, str(fp32))
        pre = Path(tmp) / "pre.onnx"
        preprocess(fp32, pre)
        pre_model = onnx.load(str(pre))
        name_nodes(pre_model)
        spatial_means_to_pooling(pre_model)
        onnx.save(pre_model, str(pre))
        spec = _input_spec(pre_model)
        excluded = excluded_nodes(pre_model, exclude, activation_matmuls)
        tensors = activation_tensors(pre_model, _float_types(pre_model), excluded)
        if not tensors:
            raise ValueError(f"onnx_path: no node of {', '.join(CPU_OP_TYPES)} to quantise in {src.name}")
        cache = _Cache() if validation is None and not calib_data.is_reiterable(calibration) else None
        hists, images = _collect(pre_model, spec, tensors, calibration, mean=mean, std=std,
                                 max_images=max_images, progress=progress, cache=cache)
        ranges = {t: calibrate.signed_range(h, method, percentile=percentile) for t, h in hists.items()}
        dst.parent.mkdir(parents=True, exist_ok=True)
        write_qdq(pre, dst, ranges, per_channel=per_channel, excluded=excluded)
    census = kernel_census(dst)
    val = validation if validation is not None else (cache if cache is not None else calibration)
    metrics = _validate(src, dst, spec, val, mean=mean, std=std, max_images=max_images, progress=progress,
                        name="validation" if validation is not None else "calibration")
    speed = None
    if compare_speed:
        x = cache[0][0] if cache else next(iter(calib_data.batches(
            val, spec, mean=mean, std=std, max_images=1, name="calibration")))[0]
        speed = speed_vs_fp32(src, dst, x)
    return QuantReport(method=method, calibration_images=images, quantized_nodes=census["integer"],
                       thresholds={k: list(v) for k, v in ranges.items()}, fp32_bytes=model_bytes(src),
                       int8_bytes=model_bytes(dst), out_path=str(dst), target="cpu",
                       kernels={"integer": census["integer"], "float": census["float"]}, speed=speed, **metrics)
