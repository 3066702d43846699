"""Static TensorRT-compatibility check of an ONNX graph (no TensorRT needed).

`check_tensorrt(model, trt_version="10.3")` walks the graph (sub-graphs of Loop/If/Scan
and model-local functions included) and returns Findings: "fatal" (the parser or the
builder rejects it, or it would parse to a different computation), "warning" (may fail,
or cannot be decided statically), "info" (something to know when building).

Rule                                   severity                 source (see tensorrt_ops)
-------------------------------------  -----------------------  --------------------------
op the parser lacks (per version)      fatal                    ops10 N rows, log, rel11
standard op absent from operators.md   warning                  ops10/ops11
custom domain, no plugin named         fatal; named -> warning  REF, log 10.10
plugin removed in 11                   fatal (11.x)             rel11
opset < 7 / < 9 / > parser max         fatal / warning / warn.  src10 ModelImporter, ops10/11
data type of input 0 not in the op's   fatal                    ops10 "Supported Types"
  supported types (UINT8/INT8/BOOL/INT
  into float ops, INT64 into MatMul...)
dtype the parser has no mapping for    fatal                    src10 convertDtype
DOUBLE input/initializer               warning (cast to FLOAT)  ops10 note
INT8 graph input                       fatal (quantised only)   ops10 note
INT64 graph input/output               info (INT64 bindings)    log 9.0 EA
Loop: scan outputs, trip count not     fatal                    ops10 Loop row, REF
  constant / carried shape changes     fatal
Scan                                   warning                  ops10 (runs as a loop)
If: branch output count/rank differ    fatal; unknown -> warn.  ops10 If row, src10 checker
Resize: mode, antialias, coordinate    fatal (cubic on 4-D:     ops10 Resize row, src10,
  mode, nearest with tf_half_pixel_for   warning)                 hdr (bicubic 2-D only)
  _nn, keep_aspect_ratio_policy
Pad: mode; axes not constant (< 10.4); fatal; pads -> warning   src10 Pad importer, log 10.4
  pads computed at run time
Slice axes not constant (< 10.3)       fatal                    ops10 Slice row, log 10.3
Reduce* axes not constant              fatal                    ops10/ops11 Reduce rows, REF
CumSum axis not constant (< 10.8)      fatal                    ops10 CumSum row, log 10.8
Squeeze/Unsqueeze axes (< 10.7)        fatal                    ops10 rows, log 10.7
Einsum: diagonal, broadcasting (<10.12) fatal; ellipsis warn.    REF, log 10.12, src10
  letters outside a-z                  fatal                    src10 Einsum checker
Q/DQ: zero point non-zero / UINT8 /    fatal                    ops10 Q/DQ rows, src10
  not int8/fp8/int4; scale <= 0; per-
  channel size mismatch; block quant.  fatal per version        hdr 10.3 / 11.1
  activation per-channel; no zp        warning
TopK: K >= 3840, sorted=0 / K dynamic  fatal / warning          ops10 TopK row, REF
MaxPool Indices output; pool dilations fatal                    ops10 MaxPool/pool rows
  or 1-D pooling
GridSample: not 4-D (< 11.2); opset-20 fatal                    ops10 row, rel11 11.2.1,
  mode names 'linear'/'cubic' (10.x)                              src10 (falls to nearest)
ScatterND reduction != none            fatal                    ops10/ops11 ScatterND row
NonZero                                warning (data-dependent) ops10 (supported)
Dynamic input dims                     info (needs a profile)   TensorRT explicit-batch API
TensorRT 11 strongly typed             info                     REF, rel11
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from .tensorrt_ops import (
    FLOAT4E2M1,
    INPUT_TYPES,
    OPSET_MIN,
    PAD_MODES,
    PARSER_DTYPES,
    REDUCE_OPS,
    REMOVED_PLUGINS_11,
    RESIZE_COORD_MODES,
    SUPPORTED,
    SUPPORTED_SINCE,
    TOPK_MAX_K,
    UNSUPPORTED,
    TrtVersion,
    opset_max,
    parse_trt_version,
)

SEVERITIES = ("fatal", "warning", "info")


@dataclass(frozen=True)
class Finding:
    """One thing the check found. node is the ONNX node name ("" for the graph)."""

    severity: str
    node: str
    op_type: str
    message: str
    advice: str = ""


def fatal(findings) -> list:
    """The fatal findings (empty when the graph should parse)."""
    return [f for f in findings if f.severity == "fatal"]


def format_findings(findings) -> str:
    """Findings as lines for a terminal, fatal first, with a one-line summary."""
    if not findings:
        return "TensorRT check: no findings"
    lines = []
    for f in findings:
        where = f"{f.node} ({f.op_type})" if f.node or f.op_type else "graph"
        line = f"{f.severity.upper():7s} {where}: {f.message}"
        if f.advice:
            line += f"\n        -> {f.advice}"
        lines.append(line)
    counts = {s: sum(f.severity == s for f in findings) for s in SEVERITIES}
    lines.append(f"TensorRT check: {counts['fatal']} fatal, {counts['warning']} warning(s), {counts['info']} info")
    return "\n".join(lines)


def check_tensorrt(onnx_path_or_model, *, trt_version: str = "10.3") -> list:
    """Check an ONNX file or onnx.ModelProto against TensorRT's ONNX parser.

    trt_version: "10.3" (JetPack 6), "10", "10.x", "11", "11.x" or a full release
    ("10.3.0.26"); a bare major applies that line's oldest rules.
    Returns a list of Finding, fatal first.
    """
    version = parse_trt_version(trt_version)
    import onnx

    model = _load(onnx_path_or_model, onnx)
    out: list = []
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception as exc:  # noqa: BLE001 - any inference failure (custom ops, bad shapes): keep going
        inferred = model
        out.append(Finding("info", "", "", f"ONNX shape inference failed ({type(exc).__name__}); "
                           "dtype and shape rules see only declared types", ""))
    checker = _Checker(inferred, version, out)
    checker.run()
    order = {s: i for i, s in enumerate(SEVERITIES)}
    return sorted(out, key=lambda f: order[f.severity])


def _load(obj, onnx):
    if isinstance(obj, onnx.ModelProto):
        return obj
    if isinstance(obj, (str, os.PathLike)):
        path = os.fspath(obj)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"onnx_path_or_model: no ONNX file at {path!r}")
        return onnx.load(path, load_external_data=False)
    raise TypeError("onnx_path_or_model must be a path or an onnx.ModelProto, "
                    f"got {type(obj).__name__}")


_DTYPE_NAMES = {1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64",
                8: "STRING", 9: "BOOL", 10: "FLOAT16", 11: "DOUBLE", 12: "UINT32", 13: "UINT64",
                14: "COMPLEX64", 15: "COMPLEX128", 16: "BFLOAT16", 17: "FLOAT8E4M3FN",
                18: "FLOAT8E4M3FNUZ", 19: "FLOAT8E5M2", 20: "FLOAT8E5M2FNUZ", 21: "UINT4", 22: "INT4",
                23: "FLOAT4E2M1"}


def _dtype_name(t) -> str:
    return _DTYPE_NAMES.get(t, str(t))


class _Scope:
    """Names visible in one graph: constants (initializers, Constant outputs) and types."""

    def __init__(self, graph, parent=None):
        from onnx import numpy_helper

        self.parent = parent
        self.consts = {}
        self.types = {}
        for init in graph.initializer:
            self.consts[init.name] = init
            self.types[init.name] = (init.data_type, list(init.dims))
        for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
            tt = vi.type.tensor_type
            if vi.type.HasField("tensor_type") and tt.elem_type:
                shape = None
                if tt.HasField("shape"):
                    shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                             for d in tt.shape.dim]
                self.types.setdefault(vi.name, (tt.elem_type, shape))
        for node in graph.node:
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and node.output:
                tensor = _constant_tensor(node, numpy_helper)
                if tensor is not None:
                    self.consts[node.output[0]] = tensor
            elif node.op_type == "Identity" and node.input and self.const(node.input[0]) is not None:
                self.consts[node.output[0]] = self.const(node.input[0])

    def const(self, name):
        if not name:
            return None
        if name in self.consts:
            return self.consts[name]
        return self.parent.const(name) if self.parent else None

    def value(self, name):
        from onnx import numpy_helper

        t = self.const(name)
        return None if t is None else numpy_helper.to_array(t)

    def dtype(self, name):
        if name in self.types:
            return self.types[name][0]
        return self.parent.dtype(name) if self.parent else None

    def shape(self, name):
        if name in self.types:
            return self.types[name][1]
        return self.parent.shape(name) if self.parent else None

    def rank(self, name):
        s = self.shape(name)
        return None if s is None else len(s)


def _constant_tensor(node, numpy_helper):
    import numpy as np

    for a in node.attribute:
        if a.name == "value":
            return a.t
        if a.name in ("value_float", "value_floats", "value_int", "value_ints"):
            v = {"value_float": a.f, "value_floats": list(a.floats), "value_int": a.i,
                 "value_ints": list(a.ints)}[a.name]
            dt = np.float32 if "float" in a.name else np.int64
            return numpy_helper.from_array(np.asarray(v, dtype=dt))
    return None


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _s(v):
    return v.decode() if isinstance(v, bytes) else v


class _Checker:
    def __init__(self, model, version: TrtVersion, out: list):
        self.model = model
        self.v = version
        self.out = out
        self.functions = {(f.domain, f.name): f for f in model.functions}
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)

    def add(self, severity, node, message, advice="", *, name=None):
        self.out.append(Finding(severity, self._name(node) if name is None else name,
                                node.op_type if node is not None else "", message, advice))

    def _name(self, node):
        return "" if node is None else (self.prefix + (node.name or f"#{self.index}"))

    # graph level ------------------------------------------------------------------
    def run(self):
        g = self.model.graph
        self.prefix, self.index = "", 0
        self._opset_rules()
        scope = _Scope(g)
        self._io_rules(g, scope)
        self._init_rules(g)
        self._graph(g, scope, "")
        if self.v.major >= 11:
            self._strongly_typed_info(g, scope)

    def _opset_rules(self):
        top = opset_max(self.v)
        adv = f"export with an opset between {OPSET_MIN} and {top} (effseg exports opset 17/18)"
        if self.opset is None:
            self.add("fatal", None, "the model imports no default-domain ('ai.onnx') opset", adv, name="")
        elif self.opset < 7:
            self.add("fatal", None, f"opset {self.opset}: TensorRT needs opset 7 or newer", adv, name="")
        elif self.opset < OPSET_MIN:
            self.add("warning", None, f"opset {self.opset} is below the parser's supported range "
                     f"{OPSET_MIN}..{top} for TensorRT {self.v.label}", adv, name="")
        elif self.opset > top:
            self.add("warning", None, f"opset {self.opset} is above the parser's supported range "
                     f"{OPSET_MIN}..{top} for TensorRT {self.v.label}: newer operator versions may be "
                     "misread or rejected", adv, name="")

    def _io_rules(self, g, scope):
        inits = {i.name for i in g.initializer}
        for vi in g.input:
            if vi.name in inits:
                continue
            dt, shape = scope.types.get(vi.name, (None, None))
            self._dtype_rule(dt, f"graph input {vi.name!r}", io=True)
            if dt == 3:
                self.add("fatal", None, f"graph input {vi.name!r} is INT8: TensorRT takes INT8 only through "
                         "quantisation from a float type", "feed FLOAT and add QuantizeLinear", name="")
            if dt == 7:
                self.add("info", None, f"graph input {vi.name!r} is INT64: it needs an INT64 binding "
                         "(the parser no longer casts INT64 to INT32 since TensorRT 9)", "", name="")
            dynamic = [(i, d) for i, d in enumerate(shape or []) if not isinstance(d, int) or d <= 0]
            if dynamic:
                dims = ", ".join(f"dim {i}={d or '?'}" for i, d in dynamic)
                self.add("info", None, f"graph input {vi.name!r} has dynamic dims ({dims}): the engine "
                         "needs an optimisation profile (min/opt/max shapes) for it",
                         "pass min/opt/max shapes to build_engine", name="")
        for vi in g.output:
            dt = scope.dtype(vi.name)
            self._dtype_rule(dt, f"graph output {vi.name!r}", io=True)
            if dt == 7:
                self.add("info", None, f"graph output {vi.name!r} is INT64: it needs an INT64 binding", "",
                         name="")

    def _init_rules(self, g):
        for init in g.initializer:
            self._dtype_rule(init.data_type, f"initializer {init.name!r}")

    def _dtype_rule(self, dt, what, *, io=False, node=None):
        if dt is None or dt == 0:
            return
        ok = PARSER_DTYPES | ({FLOAT4E2M1} if self.v.at_least(10, 8) else set())
        if dt not in ok:
            self.add("fatal", node, f"{what} has type {_dtype_name(dt)}, which TensorRT has no type for",
                     "cast to FLOAT, FLOAT16, INT32 or INT64 before export",
                     name=None if node is not None else "")
        elif dt == 11:
            self.add("warning", node, f"{what} is DOUBLE: the parser casts it to FLOAT, clamping to +-FLT_MAX",
                     "export in float32", name=None if node is not None else "")

    def _strongly_typed_info(self, g, scope):
        types = {t for t, _ in scope.types.values()}
        has_qdq = any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in g.node)
        low = 10 in types or 16 in types
        if low or has_qdq:
            msg = ("TensorRT 11 builds strongly typed networks: precision comes from the graph "
                   f"({'float16/bfloat16 tensors' if low else ''}{' and ' if low and has_qdq else ''}"
                   f"{'Q/DQ nodes' if has_qdq else ''} are kept as written)")
            adv = ""
        else:
            msg = ("TensorRT 11 builds strongly typed networks and has no FP16/INT8 builder flags: "
                   "this float32 graph builds in FP32")
            adv = "export with dtype='fp16' or quantise (explicit Q/DQ) for lower precision"
        self.add("info", None, msg, adv, name="")

    # node walk --------------------------------------------------------------------
    def _graph(self, g, scope, prefix):
        for i, node in enumerate(g.node):
            self.prefix, self.index = prefix, i
            self._node(node, scope)
            for a in node.attribute:
                subs = ([a.g] if a.HasField("g") else []) + list(a.graphs)
                for sub in subs:
                    self._graph(sub, _Scope(sub, scope), f"{prefix}{node.name or f'#{i}'}/{a.name}/")
                    self.prefix, self.index = prefix, i

    def _node(self, node, scope):
        op, dom = node.op_type, node.domain
        fn = self.functions.get((dom, op))
        if fn is not None:
            # the parser imports model-local functions (log 9.0 EA) by inlining them
            saved = (self.prefix, self.index)
            body = _FunctionGraph(fn)
            self._graph(body, _Scope(body, scope), f"{self.prefix}{node.name or op}/")
            self.prefix, self.index = saved
            return
        if dom not in ("", "ai.onnx"):
            self._custom(node)
            return
        since = SUPPORTED_SINCE.get(op)
        if since is not None and not self.v.at_least(*since):
            self.add("fatal", node, f"{op} is not supported by TensorRT {self.v.label}'s ONNX parser "
                     f"(supported from {since[0]}.{since[1]})", f"target TensorRT >= {since[0]}.{since[1]} "
                     "or express it with supported ops")
            return
        if op in UNSUPPORTED and since is None:
            self.add("fatal", node, f"{op} is not supported by TensorRT's ONNX parser",
                     "replace it with supported ops before export")
            return
        if op not in SUPPORTED and since is None:
            import onnx.defs

            if onnx.defs.has(op):
                self.add("warning", node, f"{op} is a standard ONNX op that operators.md does not list for "
                         f"TensorRT {self.v.label}", "check that the parser imports it")
            else:
                self.add("fatal", node, f"{op} is not an ONNX op: TensorRT would look for a plugin named {op}",
                         "use a standard op or register that plugin")
            return
        self._types(node, scope)
        rule = getattr(self, f"_r_{op}", None)
        if rule is not None:
            rule(node, scope, _attrs(node))
        elif op in REDUCE_OPS:
            self._reduce(node, scope, _attrs(node))

    def _custom(self, node):
        a = _attrs(node)
        named = "plugin_version" in a or "plugin_namespace" in a or node.domain == "trt.plugins"
        if self.v.major >= 11 and node.op_type in REMOVED_PLUGINS_11:
            self.add("fatal", node, f"plugin {node.op_type} was removed in TensorRT 11",
                     "replace it with standard ONNX ops")
        elif named:
            self.add("warning", node, f"needs a TensorRT plugin named {node.op_type} "
                     f"(domain {node.domain!r}) registered at build time", "load the plugin library")
        else:
            self.add("fatal", node, f"custom-domain node {node.domain}::{node.op_type}: TensorRT only parses it "
                     f"through a plugin named {node.op_type}", "lower it to standard ONNX ops (effseg's "
                     "decompositions) or add plugin_version/plugin_namespace for a registered plugin")

    def _types(self, node, scope):
        allowed = INPUT_TYPES.get(node.op_type)
        if not allowed or not node.input:
            return
        from onnx import TensorProto

        dt = scope.dtype(node.input[0])
        if dt is None or dt == TensorProto.DOUBLE:
            return
        if self.v.at_least(10, 12) and node.op_type == "Pow" and dt in (6, 7):
            return  # log 10.8 / 10.12: integer exponents and bases
        if _dtype_name(dt) not in allowed:
            self.add("fatal", node, f"input {node.input[0]!r} is {_dtype_name(dt)}; TensorRT's {node.op_type} "
                     f"takes {', '.join(sorted(allowed))}", "insert a Cast to a supported type before it")

    def _not_const(self, scope, name) -> bool:
        return bool(name) and scope.const(name) is None

    # per-op rules -----------------------------------------------------------------
    def _r_Loop(self, node, scope, a):
        body = a.get("body")
        n_carried = max(len(node.input) - 2, 0)
        n_scan = len(body.output) - 1 - n_carried if body is not None else 0
        trip = node.input[0] if node.input else ""
        if n_scan > 0 and (not trip or scope.const(trip) is None):
            self.add("fatal", node, f"Loop has {n_scan} scan output(s) but its trip count is not a constant: "
                     "scan output length cannot be dynamic", "make the trip count an initializer, or avoid "
                     "the Loop (effseg's chunked scan lowering has none)")
        if body is None:
            return
        bscope = _Scope(body, scope)
        for i in range(n_carried):
            s_in = bscope.shape(body.input[2 + i].name)
            s_out = bscope.shape(body.output[1 + i].name)
            if s_in is not None and s_out is not None and (
                    len(s_in) != len(s_out)
                    or any(isinstance(x, int) and isinstance(y, int) and x != y for x, y in zip(s_in, s_out))):
                self.add("fatal", node, f"loop-carried value {body.input[2 + i].name!r} changes shape "
                         f"({s_in} -> {s_out}): shapes must stay the same across iterations",
                         "keep carried tensors at a fixed shape")
        self.add("warning", node, "Loop parses as a TensorRT loop layer: slow, and every iteration runs "
                 "sequentially", "unroll it or use effseg's loop-free lowering")

    def _r_Scan(self, node, scope, a):
        self.add("warning", node, "Scan parses as a TensorRT loop layer: slow and sequential",
                 "unroll it or use effseg's loop-free chunked lowering")

    def _r_If(self, node, scope, a):
        if node.input and scope.const(node.input[0]) is not None:
            self.add("info", node, "If condition is a constant: only the taken branch is built", "")
            return
        then_g, else_g = a.get("then_branch"), a.get("else_branch")
        if then_g is None or else_g is None:
            return
        if len(then_g.output) != len(else_g.output):
            self.add("fatal", node, "If branches have different numbers of outputs", "")
            return
        ts, es = _Scope(then_g, scope), _Scope(else_g, scope)
        for to, eo in zip(then_g.output, else_g.output):
            rt, re_ = ts.rank(to.name), es.rank(eo.name)
            if rt is None or re_ is None:
                self.add("warning", node, f"If output ranks of {to.name!r}/{eo.name!r} are unknown: TensorRT "
                         "needs both branches to give the same rank", "make the condition a build-time constant")
            elif rt != re_:
                self.add("fatal", node, f"If branches give ranks {rt} and {re_} for output {to.name!r}: "
                         "both branches must have the same rank", "reshape both branches to one rank")
            if to.name == eo.name:
                self.add("fatal", node, f"If branches share the output name {to.name!r}; TensorRT needs "
                         "different names", "rename one branch output (add an Identity)")

    def _r_Resize(self, node, scope, a):
        mode = _s(a.get("mode", "nearest"))
        coord = _s(a.get("coordinate_transformation_mode", "half_pixel"))
        if mode == "cubic":
            rank = scope.rank(node.input[0])
            if rank == 4:
                self.add("warning", node, "Resize mode 'cubic' is not listed in operators.md; the parser maps "
                         "it to a bicubic resize layer, which handles 2-D (rank-4) inputs only",
                         "use mode='linear' (bilinear) unless an engine build confirms it")
            else:
                self.add("fatal", node, f"Resize mode 'cubic' on a rank-{rank if rank is not None else '?'} input: "
                         "TensorRT's bicubic resize is 2-D only; operators.md supports nearest and linear",
                         "use mode='linear'")
        elif mode not in ("nearest", "linear"):
            self.add("fatal", node, f"Resize mode {mode!r} is not supported", "use mode='linear' or 'nearest'")
        if self.opset is not None and self.opset >= 11 and coord not in RESIZE_COORD_MODES:
            self.add("fatal", node, f"Resize coordinate_transformation_mode {coord!r} is not supported "
                     f"(supported: {', '.join(sorted(RESIZE_COORD_MODES))})",
                     "use 'half_pixel' (align_corners=False) or 'align_corners'")
        nearest = _s(a.get("nearest_mode", "round_prefer_floor"))
        if mode == "nearest" and coord == "tf_half_pixel_for_nn" and nearest != "round_prefer_floor":
            self.add("fatal", node, f"Resize with tf_half_pixel_for_nn supports only nearest_mode "
                     f"'round_prefer_floor', not {nearest!r}", "use coordinate mode 'half_pixel'")
        if a.get("antialias", 0):
            self.add("fatal", node, "Resize antialias=1 is not supported", "export with antialias=False")
        policy = _s(a.get("keep_aspect_ratio_policy", "stretch"))
        if policy != "stretch":
            self.add("fatal", node, f"Resize keep_aspect_ratio_policy {policy!r} is not supported (only "
                     "'stretch')", "give explicit output sizes")
        # exclude_outside is passed to the layer (src10: setExcludeOutside): no finding.

    def _r_Upsample(self, node, scope, a):
        mode = _s(a.get("mode", "nearest"))
        if mode not in ("nearest", "linear", "bilinear"):
            self.add("fatal", node, f"Upsample mode {mode!r} is not supported", "use nearest or linear")

    def _r_Pad(self, node, scope, a):
        mode = _s(a.get("mode", "constant"))
        if mode not in PAD_MODES:
            self.add("fatal", node, f"Pad mode {mode!r} is not supported", "use constant, reflect, edge or wrap")
        if len(node.input) > 1 and self._not_const(scope, node.input[1]):
            self.add("warning", node, "Pad 'pads' is computed at run time: the parser accepts a 1-D shape "
                     "tensor, but non-constant pads are a common engine-build failure",
                     "make pads a constant initializer (static shapes at export)")
        if len(node.input) > 3 and self._not_const(scope, node.input[3]) and not self.v.at_least(10, 4):
            self.add("fatal", node, f"Pad 'axes' must be an initializer before TensorRT 10.4 "
                     f"(target {self.v.label})", "make axes a constant initializer")

    def _axes_input(self, node, scope, index, since, what):
        dynamic = len(node.input) > index and self._not_const(scope, node.input[index])
        if dynamic and (since is None or not self.v.at_least(*since)):
            later = f" before TensorRT {since[0]}.{since[1]}" if since else ""
            self.add("fatal", node, f"{node.op_type} '{what}' must be an initializer{later} "
                     f"(target {self.v.label})", f"make {what} a constant initializer")

    def _r_Slice(self, node, scope, a):
        self._axes_input(node, scope, 3, (10, 3), "axes")

    def _r_CumSum(self, node, scope, a):
        self._axes_input(node, scope, 1, (10, 8), "axis")

    def _r_Squeeze(self, node, scope, a):
        self._axes_input(node, scope, 1, (10, 7), "axes")

    _r_Unsqueeze = _r_Squeeze

    def _reduce(self, node, scope, a):
        self._axes_input(node, scope, 1, None, "axes")

    def _r_Einsum(self, node, scope, a):
        eq = _s(a.get("equation", "")).replace(" ", "")
        bad = sorted({c for c in eq if not ("a" <= c <= "z" or c in "->.,")})
        if bad:
            self.add("fatal", node, f"Einsum equation {eq!r} uses {''.join(bad)!r}: the parser accepts "
                     "lower-case letters only", "rename the subscripts to a-z")
        if self.v.at_least(10, 12):
            return
        lhs = eq.split("->")[0].split(",")
        if "..." in eq:
            self.add("warning", node, f"Einsum {eq!r} uses an ellipsis: TensorRT's Einsum layer lacks it "
                     "before 10.12 and the parser must expand it", "write the subscripts out, or use MatMul")
        for term in lhs:
            letters = term.replace("...", "")
            if len(set(letters)) != len(letters):
                self.add("fatal", node, f"Einsum {eq!r} takes a diagonal (repeated subscript in {term!r}), "
                         f"unsupported before TensorRT 10.12", "rewrite with Mul/ReduceSum or gather")
                break
        sizes = {}
        for term, name in zip(lhs, node.input):
            shape = scope.shape(name)
            if shape is None or "..." in term or len(shape) != len(term):
                continue
            for c, d in zip(term, shape):
                if isinstance(d, int) and d > 0:
                    if c in sizes and sizes[c] != d and 1 in (sizes[c], d):
                        self.add("fatal", node, f"Einsum {eq!r} broadcasts subscript {c!r} "
                                 f"({sizes[c]} vs {d}), unsupported before TensorRT 10.12",
                                 "Expand the operands first, or use MatMul")
                    sizes.setdefault(c, d)

    def _qdq(self, node, scope, a):
        x, scale = node.input[0], node.input[1] if len(node.input) > 1 else ""
        zp = node.input[2] if len(node.input) > 2 else ""
        is_q = node.op_type == "QuantizeLinear"
        qtype = None
        if zp:
            qtype = scope.dtype(zp)
            zv = scope.value(zp)
            if zv is None:
                self.add("warning", node, "zero point is not a constant: TensorRT needs it to be all zeros "
                         "and cannot check it here", "make the zero point a zero initializer")
            elif zv.size and (zv != 0).any():
                self.add("fatal", node, "zero point is not zero: TensorRT quantises symmetrically only",
                         "re-quantise with zero point 0 (symmetric)")
        elif "output_dtype" in a:
            qtype = a["output_dtype"]
        elif is_q:
            self.add("warning", node, "QuantizeLinear has no zero point: ONNX then means UINT8, TensorRT "
                     "quantises to INT8", "add an INT8 zero point of 0")
        if qtype == 2:
            self.add("fatal", node, "zero point is UINT8: TensorRT quantises to INT8 instead, so the engine "
                     "computes something else than ONNX Runtime", "use an INT8 zero point of 0")
        elif qtype is not None and qtype not in (3, 17, 22) and not (qtype == 23 and self.v.at_least(10, 8)):
            self.add("fatal", node, f"quantised type {_dtype_name(qtype)} is not supported (INT8, FP8, INT4)",
                     "quantise to INT8")
        sv = scope.value(scale)
        if sv is not None and sv.size and (sv <= 0).any():
            self.add("fatal", node, "scale has non-positive values", "use positive scales")
        block = a.get("block_size", 0)
        xshape = scope.shape(x)
        if block:
            kinds = {22: "INT4", 17: "FP8", 23: "FP4"} if self.v.major >= 11 else {22: "INT4"}
            rank_ok = self.v.major >= 11 or (xshape is not None and len(xshape) == 2)
            if qtype not in kinds or not rank_ok:
                allowed = "INT4, FP8 or FP4" if self.v.major >= 11 else "2-D INT4 weights"
                self.add("fatal", node, f"block quantisation (block_size={block}) of "
                         f"{_dtype_name(qtype) if qtype else 'this tensor'}: TensorRT {self.v.label} "
                         f"supports it for {allowed} only", "quantise per channel instead")
            return
        if sv is not None and sv.size > 1:
            axis = a.get("axis", 1)
            if xshape is not None:
                ax = axis + len(xshape) if axis < 0 else axis
                dim = xshape[ax] if 0 <= ax < len(xshape) else None
                if sv.ndim != 1 or (isinstance(dim, int) and dim > 0 and dim != sv.size):
                    self.add("fatal", node, f"per-channel scale of size {sv.size} does not match dim {axis} "
                             f"({dim}) of the input", "give one scale per channel along axis")
            if scope.const(x) is None and is_q:
                self.add("warning", node, "per-channel quantisation of an activation: TensorRT quantises "
                         "activations per tensor", "use one scale for activations")

    _r_QuantizeLinear = _qdq
    _r_DequantizeLinear = _qdq

    def _r_TopK(self, node, scope, a):
        kv = scope.value(node.input[1]) if len(node.input) > 1 else None
        k = int(kv.reshape(-1)[0]) if kv is not None and kv.size else a.get("k")
        if k is None:
            self.add("warning", node, f"TopK K is not a constant: TensorRT needs K < {TOPK_MAX_K}",
                     "make K an initializer")
        elif k >= TOPK_MAX_K:
            self.add("fatal", node, f"TopK K={k} is not below {TOPK_MAX_K}",
                     f"keep K < {TOPK_MAX_K} (chain TopKs, or sort on the host)")
        if a.get("sorted", 1) != 1:
            self.add("fatal", node, "TopK sorted=0 is not supported", "use sorted=1")

    def _pool(self, node, a):
        dil = list(a.get("dilations", []))
        if any(d != 1 for d in dil):
            self.add("fatal", node, f"{node.op_type} dilations {dil}: must be empty or all ones",
                     "use an undilated pool")
        ks = list(a.get("kernel_shape", []))
        if ks and len(ks) not in (2, 3):
            self.add("fatal", node, f"{node.op_type} over {len(ks)} spatial dim(s): 2-D or 3-D pooling only",
                     "reshape to a 2-D pool")

    def _r_MaxPool(self, node, scope, a):
        if len(node.output) > 1 and node.output[1]:
            self.add("fatal", node, "MaxPool's Indices output is not supported",
                     "drop return_indices (MaxUnpool is unsupported too)")
        self._pool(node, a)

    def _r_AveragePool(self, node, scope, a):
        self._pool(node, a)

    def _r_LpPool(self, node, scope, a):
        self._pool(node, a)

    def _r_GridSample(self, node, scope, a):
        rank = scope.rank(node.input[0])
        if rank is not None and rank != 4 and not (rank == 5 and self.v.at_least(11, 2)):
            self.add("fatal", node, f"GridSample on a rank-{rank} input: TensorRT {self.v.label} takes 4-D "
                     "input only", "sample 2-D (N, C, H, W)")
        mode = _s(a.get("mode", "bilinear"))
        if mode in ("linear", "cubic"):
            sev = "fatal" if self.v.major == 10 else "warning"
            self.add(sev, node, f"GridSample mode {mode!r} (opset-20 name): the 10.x importer knows only "
                     "'bilinear'/'bicubic'/'nearest' and falls back to nearest",
                     "export GridSample with opset < 20 (mode 'bilinear')")

    def _r_ScatterND(self, node, scope, a):
        red = _s(a.get("reduction", "none"))
        if red != "none":
            self.add("fatal", node, f"ScatterND reduction {red!r} is not supported", "use reduction='none'")

    def _r_NonZero(self, node, scope, a):
        self.add("warning", node, "NonZero has a data-dependent output shape: slow, and downstream shapes "
                 "become dynamic", "use a mask with Where instead")

    def _r_Cast(self, node, scope, a):
        self._dtype_rule(a.get("to"), "Cast target", node=node)


class _FunctionGraph:
    """A FunctionProto seen as a graph (inputs/outputs are names, no types)."""

    def __init__(self, fn):
        self.node = fn.node
        self.initializer = []
        self.input = []
        self.output = []
        self.value_info = list(getattr(fn, "value_info", []))
