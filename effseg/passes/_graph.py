"""Small helpers shared by the graph passes: reading constant parameters, checking users,
adding parameters and erasing what a rewrite left dead."""
from __future__ import annotations

import itertools

import torch
from torch import fx

aten = torch.ops.aten
_counter = itertools.count()


def is_call(node, *targets) -> bool:
    return isinstance(node, fx.Node) and node.op == "call_function" and node.target in targets


def attr(gm: fx.GraphModule, node) -> torch.Tensor | None:
    """The tensor a get_attr node reads, or None when node is not one."""
    if not isinstance(node, fx.Node) or node.op != "get_attr":
        return None
    obj = gm
    for part in node.target.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj if isinstance(obj, torch.Tensor) else None


def val(node):
    """The example value export recorded for node (a FakeTensor), or None."""
    return node.meta.get("val") if isinstance(node, fx.Node) else None


def shape(node) -> tuple | None:
    v = val(node)
    return tuple(v.shape) if isinstance(v, torch.Tensor) else None


def arg(node: fx.Node, i: int, name: str, default=None):
    """Positional-or-keyword argument of an aten call."""
    if len(node.args) > i:
        return node.args[i]
    return node.kwargs.get(name, default)


def int_pair(v):
    """[a, b] from an int, a 1-list or a 2-list/tuple of ints (an aten conv's stride,
    padding or dilation), else None."""
    if isinstance(v, int):
        return [v, v]
    if isinstance(v, (list, tuple)) and len(v) == 1 and isinstance(v[0], int):
        return [v[0], v[0]]
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(i, int) for i in v):
        return list(v)
    return None


def only_users(node: fx.Node, allowed) -> bool:
    return all(u in allowed for u in node.users)


def add_param(gm: fx.GraphModule, anchor: fx.Node, tensor: torch.Tensor, stem: str) -> fx.Node:
    """A new frozen parameter on gm and a get_attr node for it, placed before anchor.
    New names, never the old ones: another node may still read the original tensor."""
    name = f"_effseg_{stem}_{next(_counter)}"
    while hasattr(gm, name):
        name = f"_effseg_{stem}_{next(_counter)}"
    gm.register_parameter(name, torch.nn.Parameter(tensor.detach(), requires_grad=False))
    with gm.graph.inserting_before(anchor):
        node = gm.graph.get_attr(name)
    node.meta["val"] = tensor.detach()
    return node


def erase_dead(gm: fx.GraphModule, nodes) -> None:
    """Erase call_function / get_attr nodes among `nodes` (and their inputs, transitively)
    that have no users left. Placeholders, outputs and call_module nodes (export's guard
    function) are never touched; `nodes` themselves were replaced by the caller (a
    dropout is impure to FX, yet dead once replaced), their inputs are erased only when
    pure."""
    todo = [(n, True) for n in nodes if isinstance(n, fx.Node)]
    while todo:
        n, replaced = todo.pop()
        if (getattr(n, "_erased", False) or n.graph is not gm.graph or n.users
                or n.op not in ("call_function", "get_attr")):
            continue
        if n.op == "call_function" and not replaced and n.is_impure():
            continue
        inputs = list(n.all_input_nodes)
        gm.graph.erase_node(n)
        todo.extend((i, False) for i in inputs)


def cpu_convs(gm: fx.GraphModule, match, device, reasons: dict, veto=None):
    """(node, match(gm, node)) for every aten.conv2d that `match` takes, on a CPU target and
    not vetoed (veto() returns a reason or None). Convs turned down are counted in
    `reasons` by reason; those `match` ignores outright (None, None) are not."""
    device = torch.device(device)
    for node in list(gm.graph.nodes):
        if not is_call(node, aten.conv2d.default):
            continue
        m, reason = match(gm, node)
        if m is None and reason is None:
            continue
        if m is not None and device.type != "cpu":
            m, reason = None, f"device {device.type}: PyTorch's kernel kept"
        if m is not None and veto is not None:
            reason = veto()
            m = None if reason else m
        if m is None:
            reasons[reason] = reasons.get(reason, 0) + 1
            continue
        yield node, m
