"""Facts about TensorRT's ONNX parser that effseg.export.check_tensorrt checks against.

Sources (read for facts; nothing here is copied text):
  [ops10]  onnx/onnx-tensorrt docs/operators.md at 10.1-GA (its header still says 10.0):
           the supported / unsupported operator lists, the supported-types column,
           opset 9..20. The 10.2 and 10.3 changelog entries change no operator row
           except Slice (below), so this is the 10.3 table too.
  [ops11]  docs/operators.md at the commit TensorRT release/11.1 pins (opset 9..24).
  [log]    onnx-tensorrt docs/Changelog.md (10.0 ... 10.15): when an operator or an
           input form became supported (dated entries quoted at each table row).
  [src10]  onnx-tensorrt 10.1-GA onnxOpImporters.cpp / onnxOpCheckers.cpp: what the
           importer asserts (Pad modes, Resize modes, Q/DQ zero points, GridSample).
  [hdr]    NVIDIA/TensorRT include/NvInfer.h at release/10.3 and release/11.1
           (bicubic resize is 2-D only; block quantisation data types).
  [rel11]  TensorRT 11.0 / 11.2.1 / 11.5 release notes (Swish, DFT, opset 25,
           removed plugins; networks always strongly typed).
  [REF]    /work/shared/REFERENCE.md, "TensorRT's ONNX parser (10.x)".
"""
from __future__ import annotations

import re
from typing import NamedTuple


class TrtVersion(NamedTuple):
    """A TensorRT release as (major, minor); `label` is what the caller wrote."""

    major: int
    minor: int
    label: str

    def at_least(self, major: int, minor: int = 0) -> bool:
        return (self.major, self.minor) >= (major, minor)


ACCEPTED_VERSIONS = '"10.3", "10", "10.x", "11", "11.x", or a full release such as "10.3.0.26"'
_VERSION_RE = re.compile(r"^(10|11)(?:\.(x|\d+)(?:\.\d+){0,2})?$")


def parse_trt_version(trt_version) -> TrtVersion:
    """'10.3' -> (10, 3). A bare major ('10', '10.x') means "any release of it", so it
    takes the oldest rules of that major (10.0, 11.0): a graph that passes then
    parses on every release of the line."""
    if not isinstance(trt_version, str):
        raise TypeError(f"trt_version must be a string such as \"10.3\", got {type(trt_version).__name__}")
    m = _VERSION_RE.match(trt_version.strip())
    if m is None:
        raise ValueError(f"trt_version={trt_version!r} is not a TensorRT version this check knows; "
                         f"accepted: {ACCEPTED_VERSIONS} (TensorRT 10.x and 11.x)")
    minor = m.group(2)
    return TrtVersion(int(m.group(1)), 0 if minor in (None, "x") else int(minor), trt_version.strip())


def _words(text: str) -> frozenset:
    return frozenset(text.split())


# [ops10] rows marked N. Ops added later are in SUPPORTED_SINCE and leave this set
# for releases at or after that version.
UNSUPPORTED = _words("""
AffineGrid Bernoulli BitShift BitwiseAnd BitwiseNot BitwiseOr BitwiseXor BlackmanWindow Col2Im
CenterCropPad Compress ConcatFromSequence ConvInteger DFT Det DynamicQuantizeLinear HammingWindow
HannWindow ImageDecoder MatMulInteger MaxRoiPool MaxUnpool MelWeightMatrix Multinomial
NegativeLogLikelihoodLoss Optional OptionalGetElement OptionalHasElement QLinearConv QLinearMatMul
RegexFullMatch STFT SequenceAt SequenceConstruct SequenceEmpty SequenceErase SequenceInsert
SequenceLength SequenceMap SoftmaxCrossEntropyLoss SplitToSequence StringConcat StringNormalizer
StringSplit TfIdfVectorizer Unique
""")

# [log] / [rel11]: first release whose parser imports the op.
SUPPORTED_SINCE = {
    "BlackmanWindow": (10, 4), "HammingWindow": (10, 4), "HannWindow": (10, 4),  # log 10.4
    "STFT": (10, 5),                                                            # log 10.5
    "Attention": (10, 14),                                                      # log 10.14
    "RMSNormalization": (10, 15), "RotaryEmbedding": (10, 15),                  # log 10.15
    "TensorScatter": (10, 15),
    "Swish": (11, 0),                                                           # rel11 11.0
    "DFT": (11, 2),                                                             # rel11 11.2.1 (plugin)
}

# [ops10] rows marked Y, grouped by their "Supported Types" column (the data input's
# element type; DOUBLE is cast to FLOAT by the parser and counts as FP32 here).
_F = "FLOAT FLOAT16 BFLOAT16"
_FI = _F + " INT32 INT64"
_FIB = _FI + " BOOL"
_TYPE_GROUPS = {
    "BOOL": "And Not Or Xor",
    "FLOAT FLOAT16": "DeformConv GridSample Mish NonMaxSuppression NonZero RoiAlign",
    _F: """Acos Acosh Asin Asinh Atan Atanh AveragePool BatchNormalization Ceil Celu Clip Conv
        ConvTranspose Cos Cosh CumSum Dropout Einsum Elu Erf Exp Floor Gemm GlobalAveragePool
        GlobalLpPool GlobalMaxPool GroupNormalization GRU HardSigmoid HardSwish Hardmax ImageScaler
        InstanceNormalization IsInf LayerNormalization LeakyRelu Log LogSoftmax LRN LSTM
        LpNormalization LpPool MatMul MaxPool MeanVarianceNormalization ParametricSoftplus Pow PRelu
        QuantizeLinear Reciprocal Resize RNN Round ScaledTanh Selu Sigmoid Sin Sinh Softmax Softplus
        Softsign Sqrt Tan Tanh ThresholdedRelu Upsample Swish RMSNormalization""",
    _FI: """Abs Add ArgMax ArgMin DepthToSpace Div Equal Greater GreaterOrEqual IsNaN Less LessOrEqual
        Max Mean Min Mod Mul Neg Pad Range ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax
        ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Scatter ScatterElements
        ScatterND Shrink Sign SpaceToDepth Sub Sum TopK""",
    _FIB: """Concat Expand EyeLike Flatten Gather GatherElements GatherND Identity OneHot Reshape
        ReverseSequence Slice Split Squeeze Tile Transpose Trilu Unsqueeze""",
    _FI + " INT8": "Gelu",
}
INPUT_TYPES = {op: frozenset(group.split()) for group, ops in _TYPE_GROUPS.items() for op in ops.split()}

# Supported, with no data-type rule applied here (they create tensors, take any type,
# carry sub-graphs, or are checked by their own rule).
_OTHER_SUPPORTED = """Cast CastLike Constant ConstantOfShape DequantizeLinear If Loop Scan Shape Size
Where RandomNormal RandomNormalLike RandomUniform RandomUniformLike Attention RotaryEmbedding
TensorScatter BlackmanWindow HammingWindow HannWindow STFT DFT"""
SUPPORTED = frozenset(INPUT_TYPES) | _words(_OTHER_SUPPORTED)

# [ops10] header (opset 9..20); [log] ONNX submodule 1.17 in 10.6 (opset 22), 1.18 in
# 10.11 (opset 23); [ops10 at 10.15] and [ops11] 9..24; [rel11] 11.5 adds opset 25.
OPSET_MIN = 9
_OPSET_MAX = [((11, 5), 25), ((11, 0), 24), ((10, 15), 24), ((10, 11), 23), ((10, 6), 22), ((10, 0), 20)]


def opset_max(v: TrtVersion) -> int:
    return next(top for since, top in _OPSET_MAX if v.at_least(*since))


# [src10] convertDtype: the ONNX element types the parser maps to a TensorRT type.
# FLOAT4E2M1 (23) arrives in 10.8 [log].
PARSER_DTYPES = frozenset({1, 2, 3, 6, 7, 9, 10, 11, 16, 17, 22})  # + 23 from 10.8
FLOAT4E2M1 = 23

REDUCE_OPS = frozenset({"ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax",
                        "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare"})

# [src10] Resize importer / checker.
RESIZE_COORD_MODES = frozenset({"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn",
                                "asymmetric", "align_corners"})
PAD_MODES = frozenset({"constant", "reflect", "edge", "wrap"})  # wrap: log 10.0 EA

TOPK_MAX_K = 3840  # [ops10] "K input must be less than 3840"

# [rel11] 11.0 removed these deprecated plugins; a node naming one no longer parses.
REMOVED_PLUGINS_11 = frozenset({
    "BatchTilePlugin_TRT", "Clip_TRT", "CoordConvAC", "CropAndResize", "CustomGeluPluginDynamic",
    "LReLU_TRT", "Normalize_TRT", "SpecialSlice_TRT", "Split", "NMS_TRT", "NMSDynamic_TRT",
    "Proposal", "ProposalDynamic", "SingleStepLSTMPlugin",
})
