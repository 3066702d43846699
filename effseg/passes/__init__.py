"""Graph passes of effseg.compile, on the GraphModule of a torch.export'ed eval model.

Interface (used by effseg.compile): run_passes(gm, device) rewrites gm in place and
returns a list of {"pass": name, "changed": count, ...} records for the report.
Each pass is a local rewrite whose every condition is checked; a pattern that does not
match exactly is left as it was.
"""
from __future__ import annotations

import torch

from . import (
    constant_fold,
    depthwise_conv2d,
    fold_batchnorm,
    linear_attention,
    remove_dropout,
)

# Order matters: dropout removal exposes conv -> BN pairs; BN folding runs before the
# depthwise rewrite (which takes the folded weights); constant folding last, on what is left.
PASSES = (remove_dropout, fold_batchnorm, linear_attention, depthwise_conv2d, constant_fold)


def run_passes(gm: torch.fx.GraphModule, device) -> list[dict]:
    device = torch.device(device)
    records = []
    for p in PASSES:
        records.append(p.run(gm, device))
        gm.graph.lint()
    gm.recompile()
    return records
