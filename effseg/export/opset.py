"""Rewriting an opset-18 ONNX graph as opset 17.

torch.onnx's exporter writes opset 18, and neither onnxscript's nor onnx's version
converter goes down from 18 (onnx has no Split 18 -> 17 adapter). Few operators changed
between the two (ONNX Changelog, opset 18): the Reduce* family (except ReduceSum, which
moved at 13) takes axes as an input, Split gained num_outputs, Pad gained an axes input,
Resize gained antialias / axes / keep_aspect_ratio_policy. Those are rewritten back
here; anything that has no opset-17 form (antialiased Resize, say) raises.
"""
from __future__ import annotations

import onnx
from onnx import helper, numpy_helper

# Reduce ops whose axes became an input at opset 18 (ReduceSum did at 13).
_REDUCE_18 = frozenset({"ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                        "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"})
# Opset-18 additions whose default value means the opset-17 behaviour.
_RESIZE_DEFAULTS = {"antialias": 0, "keep_aspect_ratio_policy": b"stretch"}


class OpsetError(ValueError):
    """The graph uses an opset-18 feature that opset 17 cannot express."""


def _constants(graph) -> dict:
    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            values[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    return values


def _attr(node, name):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return None


def _drop_attrs(node, names) -> None:
    keep = [a for a in node.attribute if a.name not in names]
    del node.attribute[:]
    node.attribute.extend(keep)


def _const_input(node, idx, values, what):
    name = node.input[idx]
    if name not in values:
        raise OpsetError(f"{node.op_type} node {node.name!r}: {what} ({name!r}) is computed at run "
                         "time; opset 17 needs it as an attribute")
    return values[name]


def _downgrade_node(node, values) -> None:
    if node.op_type in _REDUCE_18:
        noop = _attr(node, "noop_with_empty_axes")
        _drop_attrs(node, {"noop_with_empty_axes"})
        if len(node.input) > 1 and node.input[1]:
            axes = _const_input(node, 1, values, "axes")
            if axes.size == 0 and noop:
                raise OpsetError(f"{node.op_type} node {node.name!r} is a no-op by noop_with_empty_axes, "
                                 "which opset 17 lacks")
            del node.input[1:]
            if axes.size:
                node.attribute.append(helper.make_attribute("axes", [int(a) for a in axes.reshape(-1)]))
    elif node.op_type == "Split":
        # Opset 17 splits evenly into len(outputs) parts when no sizes are given.
        _drop_attrs(node, {"num_outputs"})
    elif node.op_type == "Pad":
        if len(node.input) > 3 and node.input[3]:
            raise OpsetError(f"Pad node {node.name!r} pads selected axes (the opset-18 axes input); "
                             "opset 17 needs pads for every axis")
    elif node.op_type == "Resize":
        for name, default in _RESIZE_DEFAULTS.items():
            v = _attr(node, name)
            if v is not None and v != default:
                raise OpsetError(f"Resize node {node.name!r} sets {name}={v!r}, which opset 17 lacks")
        if _attr(node, "axes") is not None:
            raise OpsetError(f"Resize node {node.name!r} resizes selected axes, which opset 17 lacks")
        _drop_attrs(node, set(_RESIZE_DEFAULTS))


def downgrade_to_17(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same graph written for opset 17 (in place; also returned)."""
    version = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if version is None or version <= 17:
        return model
    if version > 18:
        raise OpsetError(f"only opset 18 graphs can be rewritten as opset 17, this one is opset {version}")
    bodies = [model.graph] + list(model.functions)
    for body in bodies:
        values = _constants(body) if isinstance(body, onnx.GraphProto) else {}
        if isinstance(body, onnx.FunctionProto):
            values = {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in body.node
                      if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"}
        for node in body.node:
            _downgrade_node(node, values)
    for o in list(model.opset_import) + [o for f in model.functions for o in f.opset_import]:
        if o.domain in ("", "ai.onnx"):
            o.version = 17
    return drop_unused_initializers(model)


def _used_names(graph, used: set) -> set:
    for node in graph.node:
        used.update(node.input)
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                _used_names(a.g, used)
            elif a.type == onnx.AttributeProto.GRAPHS:
                for g in a.graphs:
                    _used_names(g, used)
    used.update(o.name for o in graph.output)
    return used


def drop_unused_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    """Remove initializers no node reads (the rewritten axes inputs, for one)."""
    used = _used_names(model.graph, set())
    keep = [i for i in model.graph.initializer if i.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    return model
