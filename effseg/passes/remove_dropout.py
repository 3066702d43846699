"""Drop inference no-ops: dropout with train=False (or p=0) and aliases."""
from __future__ import annotations

from torch import fx

from ._graph import aten, erase_dead, is_call

_DROPOUTS = (aten.dropout.default, aten.feature_dropout.default, aten.alpha_dropout.default,
             aten.feature_alpha_dropout.default)


def run(gm: fx.GraphModule, device) -> dict:
    changed = 0
    for node in list(gm.graph.nodes):
        if is_call(node, *_DROPOUTS):
            x, p, train = node.args[0], node.args[1], node.args[2]
            # Only a literal train=False (eval) or p == 0 is the identity; a traced
            # training-mode dropout is random and stays.
            if not (train is False or p == 0):
                continue
        elif is_call(node, aten.alias.default):
            x = node.args[0]
        else:
            continue
        node.replace_all_uses_with(x)
        erase_dead(gm, [node])
        changed += 1
    return {"pass": "remove_dropout", "changed": changed}
