"""The native-scan form of a bundle: the model's ONNX graph cut at its cross selective
scans, so that the runtime can run ONNX Runtime between them and effseg's C++ scan at
them (effseg.runtime.native_scan).

model.onnx keeps every scan as standard ops (what TensorRT parses, and the fallback
where effseg._C is missing); on a CPU those ops are ~95% of ONNX Runtime's time for
CM-UNet. Here the scan is exported once more as one node of the custom domain `effseg`
(never run by ONNX Runtime) and the graph is cut there into plain-ONNX segments. The
scan's constant inputs (A, D, delta_bias, the traversal map) go into one more graph
that the runtime runs once at load.
"""
from __future__ import annotations

from pathlib import Path

SCAN_DOMAIN = "effseg"
SCAN_OP = "CrossSelectiveScan"
SCAN_INPUTS = ("u", "delta", "A", "B", "C", "D", "delta_bias", "tmap")
# Mamba's 1-D scan, cut at only by effseg.compile (bundles keep the cross scan alone):
# B and C (batch, N, L), no initial state; D, z and delta_bias may be absent ("").
SELECTIVE_OP = "SelectiveScan"
SELECTIVE_INPUTS = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def _registered(op: str) -> bool:
    import onnx

    try:
        onnx.defs.get_schema(op, 1, SCAN_DOMAIN)
    except onnx.defs.SchemaError:
        return False
    return True


def _register_selective() -> None:
    import onnx
    from onnx.defs import OpSchema

    if _registered(SELECTIVE_OP):
        return
    p = OpSchema.FormalParameter
    opt = OpSchema.FormalParameterOption.Optional
    schema = OpSchema(
        SELECTIVE_OP, SCAN_DOMAIN, 1,
        doc="Mamba's selective scan (effseg.ops.selective_scan); run by effseg, not by ONNX Runtime",
        inputs=[p(n, "T", param_option=opt) if n in ("D", "z", "delta_bias") else p(n, "T")
                for n in SELECTIVE_INPUTS],
        outputs=[p("y", "T"), p("last_state", "T")],
        type_constraints=[("T", ["tensor(float)"], "float32 activations")],
        attributes=[OpSchema.Attribute("delta_softplus", OpSchema.AttrType.INT, "softplus on delta")])
    onnx.defs.register_schema(schema)


def register_schema() -> None:
    """effseg.CrossSelectiveScan (and effseg.SelectiveScan) in onnx's schema registry,
    which onnxscript needs to emit the nodes. Registered once per process."""
    import onnx
    from onnx.defs import OpSchema

    _register_selective()
    if _registered(SCAN_OP):
        return
    p = OpSchema.FormalParameter
    schema = OpSchema(
        SCAN_OP, SCAN_DOMAIN, 1,
        doc="SS2D's four-direction selective scan, merged (effseg.ops.cross_selective_scan); "
            "run by effseg's runtime, not by ONNX Runtime",
        inputs=[p(n, "I" if n == "tmap" else "T") for n in SCAN_INPUTS],
        outputs=[p("y", "T")],
        type_constraints=[("T", ["tensor(float)"], "float32 activations"),
                          ("I", ["tensor(int32)", "tensor(int64)"], "traversal orders")],
        attributes=[OpSchema.Attribute("delta_softplus", OpSchema.AttrType.INT, "softplus on delta")])
    onnx.defs.register_schema(schema)


def translation_table(selective: bool = False) -> dict:
    """torch.onnx's custom_translation_table entries: the fused cross scan as one effseg
    node, and with selective=True Mamba's selective scan too (effseg.compile's cut)."""
    import onnxscript
    import torch

    register_schema()
    opset = onnxscript.values.Opset(SCAN_DOMAIN, 1)

    def cross_selective_scan(u, delta, A, B, C, D, delta_bias, tmap, delta_softplus: bool,
                             backend: str = "cpp"):
        return opset.CrossSelectiveScan(u, delta, A, B, C, D, delta_bias, tmap,
                                        delta_softplus=int(bool(delta_softplus)))

    table = {torch.ops.effseg.cross_selective_scan.default: cross_selective_scan}
    if selective:
        def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, initial_state=None,
                           delta_softplus: bool = False, backend: str = "auto"):
            return opset.SelectiveScan(u, delta, A, B, C, D, z, delta_bias,
                                       delta_softplus=int(bool(delta_softplus)), _num_outputs=2)

        table[torch.ops.effseg.selective_scan.default] = selective_scan
    return table


def _is_scan(node) -> bool:
    return node.domain == SCAN_DOMAIN and node.op_type in (SCAN_OP, SELECTIVE_OP)


def _graph_model(proto, name, nodes, inputs, outputs, initializers, types):
    import onnx
    from onnx import helper

    def vi(n):
        if n not in types:
            raise ValueError(f"the exported graph has no type for {n!r}: cannot cut it there")
        return types[n]

    graph = helper.make_graph(nodes, name, [vi(n) for n in inputs], [vi(n) for n in outputs],
                              initializer=initializers)
    opsets = [o for o in proto.opset_import if o.domain != SCAN_DOMAIN]
    m = helper.make_model(graph, opset_imports=opsets, producer_name="effseg")
    m.ir_version = proto.ir_version
    onnx.checker.check_model(m)
    return m


def split_at_scans(proto):
    """Cut an ONNX ModelProto at its effseg.CrossSelectiveScan nodes.

    Returns (constants, segments, steps): `constants` a model without inputs whose outputs
    are the scans' initializer inputs, `segments` plain-ONNX models in run order, and
    `steps` the run plan: {"segment": i} or {"scan": {"inputs": [8 names], "output":
    name, "delta_softplus": bool}}; every name refers to a value of the runtime's
    environment (graph input, constant, or an earlier step's output).
    """
    import onnx
    from onnx import helper

    g = proto.graph
    for n in g.node:
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in n.attribute):
            raise ValueError(f"node {n.name!r} ({n.op_type}) holds a subgraph: cutting such graphs is not supported")
    inits = {t.name: t for t in g.initializer}
    types = {v.name: v for v in [*g.input, *g.output, *g.value_info]}
    for t in g.initializer:
        types.setdefault(t.name, helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))

    pieces, cur = [], []
    for n in g.node:
        if _is_scan(n):
            pieces.append(cur)
            pieces.append(n)
            cur = []
        else:
            cur.append(n)
    pieces.append(cur)
    scans = [p for p in pieces if not isinstance(p, list)]
    if not scans:
        raise ValueError(f"the graph holds no {SCAN_DOMAIN}.{SCAN_OP} node: nothing to cut")

    # Names each later piece reads, so a segment outputs exactly what is still needed.
    reads = [set(p.input) if not isinstance(p, list) else {i for n in p for i in n.input} for p in pieces]
    final = {o.name for o in g.output}
    const_names = []
    for s in scans:
        const_names += [i for i in s.input if i in inits and i not in const_names]

    segments, steps = [], []
    for k, piece in enumerate(pieces):
        later = set(final).union(*reads[k + 1:])
        if not isinstance(piece, list) and piece.op_type == SELECTIVE_OP:
            ins = list(piece.input) + [""] * (len(SELECTIVE_INPUTS) - len(piece.input))
            if len(ins) != len(SELECTIVE_INPUTS) or any(i == "" for i in ins[:5]):
                raise ValueError(f"{SELECTIVE_OP} node {piece.name!r} must have u, delta, A, B and C, "
                                 f"got {list(piece.input)}")
            soft = [a.i for a in piece.attribute if a.name == "delta_softplus"]
            steps.append({"scan": {"op": SELECTIVE_OP, "inputs": ins, "outputs": list(piece.output),
                                   "delta_softplus": bool(soft and soft[0])}})
            continue
        if not isinstance(piece, list):
            if len(piece.input) != len(SCAN_INPUTS) or any(i == "" for i in piece.input):
                raise ValueError(f"{SCAN_OP} node {piece.name!r} must have all {len(SCAN_INPUTS)} inputs "
                                 f"({', '.join(SCAN_INPUTS)}), got {list(piece.input)}")
            soft = [a.i for a in piece.attribute if a.name == "delta_softplus"]
            steps.append({"scan": {"inputs": list(piece.input), "output": piece.output[0],
                                   "delta_softplus": bool(soft and soft[0])}})
            continue
        made, needed, used_inits = set(), [], []
        for n in piece:
            for i in n.input:
                if i == "" or i in made:
                    continue
                if i in inits:
                    if i not in used_inits:
                        used_inits.append(i)
                elif i not in needed:
                    needed.append(i)
            made.update(o for o in n.output if o)
        outputs = [o for n in piece for o in n.output if o and o in later]
        if not outputs:
            continue
        segments.append(_graph_model(proto, f"segment{len(segments)}", piece, needed, outputs,
                                     [inits[i] for i in used_inits], types))
        steps.append({"segment": len(segments) - 1})
    nodes = [helper.make_node("Identity", [c], [c + "/const"]) for c in const_names]
    const_outputs = [helper.make_tensor_value_info(c + "/const", inits[c].data_type, list(inits[c].dims))
                     for c in const_names]
    graph = helper.make_graph(nodes, "constants", [], const_outputs, initializer=[inits[c] for c in const_names])
    constants = helper.make_model(graph, opset_imports=[o for o in proto.opset_import if o.domain != SCAN_DOMAIN],
                                  producer_name="effseg")
    constants.ir_version = proto.ir_version
    for st in steps:
        if "scan" in st:
            st["scan"]["inputs"] = [i + "/const" if i in inits else i for i in st["scan"]["inputs"]]
    return constants, segments, steps


def has_cross_scans(model) -> bool:
    """Whether the model runs effseg's fused cross selective scan (SS2D blocks)."""
    from ..nn.ss2d import SS2D

    return any(isinstance(m, SS2D) for m in model.modules())


def write_native_scan(model, folder, *, input_shape, dynamic_batch: bool = False, dynamic_hw: bool = False,
                      argmax: bool = False, max_hw: int = 2048, input_name: str = "input",
                      output_name: str | None = None, prefix: str = "model.native") -> tuple[dict, list]:
    """Export `model` (fp32) with its cross scans as effseg nodes, cut it, and save the
    pieces in `folder` as PREFIX.constants.onnx and PREFIX.segNN.onnx.

    Returns (section, files): meta.json's "native_scan" section and the files written.
    Needs effseg._C at export time (without it the model traces the chunked scan, and
    there is no scan node to cut at): a RuntimeError says so.
    """
    import copy

    import onnx
    import torch

    from .. import _native
    from .onnx import export_onnx
    from .to_onnx import _dynamic_shapes, _Head, _input_shape, _size_multiple

    if not _native.available():
        raise RuntimeError(f"the native-scan form needs effseg._C at export time: {_native.reason}")
    folder = Path(folder)
    shape = _input_shape(input_shape)
    dyn = _dynamic_shapes(shape, model, dynamic_batch, dynamic_hw, max_hw)
    m = _size_multiple(model)
    trace_shape = (max(2, shape[0]) if dynamic_batch else shape[0], shape[1],
                   *((max(2 * m, d) if dynamic_hw else d) for d in shape[2:]))
    net = _Head(copy.deepcopy(model).cpu().float().eval(), argmax)
    example = torch.randn(trace_shape, generator=torch.Generator().manual_seed(0))
    out_name = output_name or ("labels" if argmax else "logits")
    tmp = folder / f"{prefix}.full.onnx"
    try:
        proto = export_onnx(net, (example,), tmp, opset=18, dynamic_shapes=dyn, input_names=[input_name],
                            output_names=[out_name], custom_translations=translation_table())
    finally:
        tmp.unlink(missing_ok=True)
    constants, segments, steps = split_at_scans(proto)
    files = [f"{prefix}.constants.onnx"]
    onnx.save(constants, str(folder / files[0]))
    seg_files = []
    for i, seg in enumerate(segments):
        seg_files.append(f"{prefix}.seg{i:02d}.onnx")
        onnx.save(seg, str(folder / seg_files[-1]))
    return {"constants": files[0], "segments": seg_files, "steps": steps}, files + seg_files


def check_native_scan(section: dict, folder, model, input_shape, *, argmax: bool = False,
                      input_name: str = "input", output_name: str | None = None) -> dict:
    """Run the native-scan form as the runtime will (effseg.runtime.segmented) on a
    random input and compare it with the fp32 PyTorch model under effseg's parity rule;
    returns the figures or raises effseg.ParityError."""
    import copy

    import torch

    from .._parity import check_parity
    from ..runtime.segmented import SegmentedModel
    from .to_onnx import _Head, _input_shape

    folder = Path(folder)
    x = torch.randn(_input_shape(input_shape), generator=torch.Generator().manual_seed(1))
    run = SegmentedModel(section, lambda name: (folder / name).read_bytes(), input_name,
                         output_name or ("labels" if argmax else "logits"))
    with torch.no_grad():
        want = _Head(copy.deepcopy(model).cpu().float().eval(), False)(x)
    got = torch.from_numpy(run(x.numpy()))
    return check_parity(want, got, torch.float32, f"the native-scan form in {folder}", labels=argmax)
