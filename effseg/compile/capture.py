"""Graph capture for effseg.compile: torch.export of the eval model, then effseg's passes.

Static capture (one graph per input shape) is the default: on this project's zoo it
costs 1-3 s per model, while Dim.AUTO batch/H/W export took up to ~70 s and batch 1
specialises anyway (torch.export's 0/1 specialisation). dynamic=True asks for symbolic
batch/H/W; dims the model pins (reshapes to window counts, ...) stay static.
"""
from __future__ import annotations

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
    """Name the innermost submodule whose forward was running when export failed.

    Export runs the Python forward (non-strict), so hooks see entry and exit; the last
    module entered and not left is where tracing stopped.
    """
    stack: list = []
    names = {m: f"{n or '<root>'} ({type(m).__name__})" for n, m in model.named_modules()}
    handles = []

    def enter(mod, args):
        stack.append(names[mod])

    def leave(mod, args, out):  # must return None, or it would replace the output
        if stack:
            stack.pop()

    for mod in names:
        handles.append(mod.register_forward_pre_hook(enter))
        handles.append(mod.register_forward_hook(leave))
    try:
        torch.export.export(model, (x,), dynamic_shapes=_dynamic_spec(x) if dynamic else None)
    except Exception:  # noqa: BLE001, S110  the failure itself was recorded by capture()
        pass
    finally:
        for h in handles:
            h.remove()
    return stack[-1] if stack else f"<root> ({type(model).__name__})"


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
