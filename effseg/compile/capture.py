"""Graph capture for effseg.compile: torch.export of the eval model, then effseg's passes.

Static capture (one graph per input shape) is the default: on this project's zoo it
costs 1-3 s per model, while Dim.AUTO batch/H/W export took up to ~70 s and batch 1
specialises anyway (torch.export's 0/1 specialisation). dynamic=True asks for symbolic
batch/H/W; dims the model pins (reshapes to window counts, ...) stay static.

A model that cannot be captured as a whole (data-dependent control flow in one block)
is not all eager: `capture_parts` captures its children one by one (recursing into a
child that fails, a few levels deep) and `with_parts` runs the parent's Python forward
with the captured children swapped in.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import torch


@dataclass
class Capture:
    gm: torch.fx.GraphModule | None  # None: fell back to the eager module
    dynamic_dims: tuple = ()  # per input dim: True where the graph is symbolic
    passes: list = field(default_factory=list)
    capture_s: float = 0.0
    failed_module: str | None = None
    error: str | None = None
    parts: list = field(default_factory=list)  # gm None: submodules captured on their own


def _dynamic_spec(x: torch.Tensor):
    dims = (0, 2, 3) if x.dim() == 4 else tuple(range(x.dim()))
    return ({d: torch.export.Dim.AUTO for d in dims},)


def _symbolic_dims(ep) -> tuple:
    ph = [n for n in ep.graph_module.graph.nodes if n.op == "placeholder"
          and n.name in _user_input_names(ep)]
    if not ph:
        return ()
    return tuple(not isinstance(s, int) for s in ph[0].meta["val"].shape)


def _user_input_names(ep) -> set:
    return {s.arg.name for s in ep.graph_signature.input_specs
            if s.kind == torch.export.graph_signature.InputKind.USER_INPUT}


def failing_module(model: torch.nn.Module, x: torch.Tensor, dynamic: bool) -> str:
    """Name the innermost submodule whose forward was running when export failed."""
    from ..export.diagnose import failing_module as innermost

    return innermost(model, lambda: torch.export.export(
        model, (x,), dynamic_shapes=_dynamic_spec(x) if dynamic else None))


def child_inputs(model: torch.nn.Module, x: torch.Tensor) -> dict:
    """{name: input} for each direct child that one eager forward calls exactly once with
    a single tensor and no keywords: the children that can be captured on their own."""
    seen: dict = {}
    handles = []
    for name, child in model.named_children():
        def hook(mod, args, kwargs, name=name):
            ok = len(args) == 1 and not kwargs and isinstance(args[0], torch.Tensor)
            seen[name] = None if name in seen or not ok else args[0].detach()
        handles.append(child.register_forward_pre_hook(hook, with_kwargs=True))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return {n: v for n, v in seen.items() if v is not None}


@dataclass
class Part:
    """One submodule captured on its own while its parent could not be: path from the
    root, the Capture, and its input at this specialisation."""

    path: str
    cap: Capture
    example: torch.Tensor


def capture_parts(model: torch.nn.Module, x: torch.Tensor, device, backend: str = "eager",
                  prefix: str = "", depth: int = 3) -> tuple[list, list]:
    """When `model` as a whole cannot be captured: capture each child that can be (on the
    input it gets from the eager forward), and look inside those that cannot, down to
    `depth` levels. Returns (captured Parts, [(path, failed Capture)] of the leaves that
    stay eager)."""
    parts, eager = [], []
    for name, ex in child_inputs(model, x).items():
        child = getattr(model, name)
        path = f"{prefix}{name}"
        cap = capture(child, ex, device, backend=backend)
        if cap.gm is not None:
            parts.append(Part(path, cap, ex))
            continue
        if depth > 1 and any(True for _ in child.children()):
            sub_parts, sub_eager = capture_parts(child, ex, device, backend, f"{path}.", depth - 1)
            if sub_parts:
                parts += sub_parts
                eager += sub_eager
                continue
        eager.append((path, cap))
    return parts, eager


def with_parts(model: torch.nn.Module, runners: dict) -> torch.nn.Module:
    """A copy of `model` whose submodules at the paths of `runners` are replaced by them.
    Only the modules on those paths are copied (shallow): weights stay shared."""
    root = copy.copy(model)
    root._modules = type(model._modules)(model._modules)
    for path, runner in runners.items():
        parent = root
        *up, last = path.split(".")
        for name in up:
            child = copy.copy(parent._modules[name])
            child._modules = type(child._modules)(child._modules)
            parent._modules[name] = child
            parent = child
        parent._modules[last] = _Runner(runner)
    return root


class _Runner(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def capture(model: torch.nn.Module, x: torch.Tensor, device: torch.device,
            dynamic: bool = False, run_passes: bool = True, backend: str = "eager") -> Capture:
    """Export `model` on `x`; on failure return a Capture with gm=None and the culprit."""
    from .. import passes

    t0 = time.perf_counter()
    try:
        with torch.no_grad():
            ep = torch.export.export(model, (x,), dynamic_shapes=_dynamic_spec(x) if dynamic else None)
    except Exception as exc:  # noqa: BLE001  the exporter raises many types; every one means "cannot capture"
        msg = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        return Capture(gm=None, capture_s=time.perf_counter() - t0,
                       failed_module=failing_module(model, x, dynamic), error=msg)
    dyn = _symbolic_dims(ep) if dynamic else tuple(False for _ in range(x.dim()))
    gm = ep.module()
    records = passes.run_passes(gm, device, backend) if run_passes else []
    return Capture(gm=gm, dynamic_dims=dyn, passes=list(records),
                   capture_s=time.perf_counter() - t0)
