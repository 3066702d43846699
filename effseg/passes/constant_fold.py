"""Fold parameter-only subgraphs (e.g. a relative-position bias table gathered and
permuted on every call) into precomputed parameters, computed once at compile time."""
from __future__ import annotations

import torch
from torch import fx

from ._graph import add_param, attr, erase_dead

# Folding a node that only reshapes / views one parameter would just copy it.
_VIEWS = {torch.ops.aten.view.default, torch.ops.aten.reshape.default,
          torch.ops.aten.expand.default, torch.ops.aten.unsqueeze.default,
          torch.ops.aten.squeeze.dim, torch.ops.aten.t.default}
# Results larger than this stay computed at run time (memory over a trivial saving).
MAX_ELEMENTS = 1 << 24


def _foldable(node: fx.Node, const: dict) -> bool:
    if node.op != "call_function" or not isinstance(node.target, torch._ops.OpOverload):
        return False
    if node.target.namespace != "aten" or node.is_impure():
        return False
    tags = node.target.tags
    if torch.Tag.nondeterministic_seeded in tags or node.target._schema.is_mutable:
        return False
    inputs = node.all_input_nodes
    return bool(inputs) and all(n in const for n in inputs)


def run(gm: fx.GraphModule, device) -> dict:
    const: dict[fx.Node, torch.Tensor] = {}
    for node in gm.graph.nodes:
        t = attr(gm, node)
        if t is not None:
            const[node] = t
            continue
        if not _foldable(node, const):
            continue
        args = fx.node.map_arg(node.args, lambda n: const[n])
        kwargs = fx.node.map_arg(node.kwargs, lambda n: const[n])
        with torch.no_grad():
            out = node.target(*args, **kwargs)
        if isinstance(out, torch.Tensor):
            const[node] = out
    changed = 0
    for node, t in list(const.items()):
        if node.op != "call_function" or t.numel() > MAX_ELEMENTS:
            continue
        if node.target in _VIEWS and all(n.op == "get_attr" for n in node.all_input_nodes):
            continue
        # Only the frontier: a folded value still read by a non-constant node.
        if all(u in const for u in node.users):
            continue
        new = add_param(gm, node, t.contiguous(), "folded_const")
        new.meta = {**node.meta, "val": node.meta.get("val", t)}
        node.replace_all_uses_with(new, delete_user_cb=lambda u: u not in const)
        erase_dead(gm, [node])
        changed += 1
    return {"pass": "constant_fold", "changed": changed}
