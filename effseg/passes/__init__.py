"""Graph passes of effseg.compile, on the GraphModule of a torch.export'ed eval model.

Interface (used by effseg.compile): run_passes(gm, device) rewrites gm in place and
returns a list of {"pass": name, "changed": count, ...} records for the report.
"""
from __future__ import annotations

import torch


def run_passes(gm: torch.fx.GraphModule, device: torch.device) -> list[dict]:
    # Placeholder until the passes land: no rewrite, nothing to report.
    return []
