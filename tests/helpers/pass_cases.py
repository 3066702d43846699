"""Export-and-rewrite helpers of the graph-pass tests."""
from __future__ import annotations

import torch


def export_gm(model: torch.nn.Module, x: torch.Tensor) -> torch.fx.GraphModule:
    return torch.export.export(model.eval(), (x,)).module()


def targets(gm: torch.fx.GraphModule) -> list:
    return [n.target for n in gm.graph.nodes if n.op == "call_function"]


def rel_err(y: torch.Tensor, ref: torch.Tensor) -> float:
    """max |y - ref| / max |ref| (the "1e-4 x output scale" figure)."""
    return float((y - ref).abs().max() / ref.abs().max().clamp_min(1e-30))
