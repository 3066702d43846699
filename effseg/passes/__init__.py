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
    winograd_conv2d,
)

# Order matters: dropout removal exposes conv -> BN pairs; BN folding runs before the
# conv rewrites (which take the folded weights); constant folding last, on what is left.
PASSES = (remove_dropout, fold_batchnorm, linear_attention, depthwise_conv2d,
          winograd_conv2d, constant_fold)
# The passes that put one of effseg's ops where an aten op was: whether that op is the
# faster one depends on the machine, so effseg.compile's autotune times each one's absence.
SWAPS = ("linear_attention", "depthwise_conv2d", "winograd_conv2d")


def pass_name(p) -> str:
    return p.__name__.rsplit(".", 1)[-1]


def run_passes(gm: torch.fx.GraphModule, device, backend: str = "eager", skip=()) -> list[dict]:
    """backend: the effseg.compile backend that will run gm; passes that only pay off
    when PyTorch runs the graph (they declare BACKENDS) leave it alone otherwise.
    skip: names of passes not to run (each still gets a record, with "skipped")."""
    names = [pass_name(p) for p in PASSES]
    unknown = sorted(set(skip) - set(names))
    if unknown:
        raise ValueError(f"skip must name passes among {names}, got {unknown}")
    device = torch.device(device)
    records = []
    for p, name in zip(PASSES, names):
        if name in skip:
            records.append({"pass": name, "changed": 0, "skipped": True})
            continue
        kw = {"backend": backend} if hasattr(p, "BACKENDS") else {}
        records.append(p.run(gm, device, **kw))
        gm.graph.lint()
    gm.recompile()
    return records
