"""Export failures said in the user's terms: which module, which op, what effseg tried
and what the user can change, instead of the exporter's stack trace.

The module comes from the FX node's nn_module_stack (torch.export records the module
path of every op), from the ONNX node's name scopes (torch.onnx copies them into the
node metadata), or, when tracing itself stops, from forward hooks that see which module
was running.
"""
from __future__ import annotations

import re

import torch

# to_onnx wraps the user's model in a head module whose attribute is "model".
_WRAPPER_PREFIX = "model"


class ExportError(RuntimeError):
    """An export effseg refuses, or that PyTorch's exporter could not do, with where
    (module, op), what effseg tried and what the user can change."""

    def __init__(self, module: str, op: str, reason: str, tried: str = "", advice: str = ""):
        self.module, self.op, self.reason, self.tried, self.advice = module, op, reason, tried, advice
        msg = f"cannot export module {module}, op {op}: {reason}"
        if tried:
            msg += f"\n  effseg tried: {tried}"
        if advice:
            msg += f"\n  what you can change: {advice}"
        super().__init__(msg)


def _short_type(t) -> str:
    s = t if isinstance(t, str) else getattr(t, "__name__", str(t))
    return s.rsplit(".", 1)[-1].strip("'>")


def _strip(path: str) -> str:
    if path == _WRAPPER_PREFIX:
        return ""
    return path[len(_WRAPPER_PREFIX) + 1:] if path.startswith(_WRAPPER_PREFIX + ".") else path


def module_name(path: str, type_name) -> str:
    """'stages.1.0 (AdaptiveMaxPool2d)', '<root> (Net)'."""
    return f"{_strip(path) or '<root>'} ({_short_type(type_name)})"


def node_module(node) -> str:
    """The innermost module an FX node of an exported program was traced in."""
    stack = node.meta.get("nn_module_stack") or {}
    inner = [v for v in stack.values() if _strip(v[0]) or len(stack) == 1]
    if not stack:
        return "<root>"
    path, typ = (inner or list(stack.values()))[-1]
    return module_name(path, typ)


def op_name(node) -> str:
    t = node.target
    return f"aten.{t._overloadpacket.__name__}" if hasattr(t, "_overloadpacket") else str(t)


def onnx_node_module(node) -> str:
    """The module an ONNX node came from, from torch.onnx's metadata, or its name."""
    meta = {p.key: p.value for p in node.metadata_props}
    scopes = _literal_list(meta.get("pkg.torch.onnx.name_scopes"))
    classes = _literal_list(meta.get("pkg.torch.onnx.class_hierarchy"))
    if len(scopes) >= 2 and len(classes) >= 2:
        return module_name(scopes[-2], classes[-2])
    return f"(ONNX node {node.name})"


def _literal_list(text):
    if not text:
        return []
    import ast

    try:
        v = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return []
    return [str(x) for x in v] if isinstance(v, list) else []


_OVERLOAD = re.compile(r"OpOverload\(op='([\w.]+)', overload='(\w+)'\)")
_TARGET = re.compile(r"target=torch\.ops\.([\w.]+)\]")


def translation_error(ep, exc: Exception) -> ExportError:
    """The ONNX translation of `ep` failed with `exc`: name the op and its module."""
    text = str(exc)
    m = _OVERLOAD.search(text)
    target = f"{m.group(1)}.{m.group(2)}" if m else None
    if target is None:
        m = _TARGET.search(text)
        target = m.group(1) if m else None
    nodes = [n for n in ep.graph.nodes if n.op == "call_function" and target and str(n.target) == target]
    module = node_module(nodes[0]) if nodes else "<unknown>"
    summary = next((ln.strip() for ln in text.splitlines() if "No ONNX function" in ln or "Error" in ln[:40]),
                   text.strip().splitlines()[0] if text.strip() else type(exc).__name__)
    return ExportError(module, target or "<unknown>", f"torch.onnx has no ONNX translation for it ({summary[:300]})",
                       tried="its own standard-op lowerings (einsum, resampling, adaptive pooling, effseg's ops) "
                       "before translation",
                       advice="replace the call with standard tensor ops, or open an issue naming the op")


def forbidden_error(proto, bad: set) -> ExportError:
    where = {}
    for n in proto.graph.node:
        if n.op_type in bad:
            where.setdefault(n.op_type, onnx_node_module(n))
    first = sorted(bad)[0]
    listed = ", ".join(f"{op} from {mod}" for op, mod in sorted(where.items()))
    return ExportError(where.get(first, "<unknown>"), first,
                       f"the exported graph contains ops TensorRT rejects: {sorted(bad)} ({listed})",
                       tried="einsum as MatMul/ReduceSum, effseg's ops as standard ops",
                       advice="write that part with matmul/sum/permute, or report the pattern to effseg")


def failing_module(model: torch.nn.Module, run) -> str:
    """The innermost submodule whose forward was running when run() raised.

    torch.export runs the Python forward (non-strict), so hooks see entry and exit;
    the last module entered and not left is where tracing stopped.
    """
    stack: list = []
    names = {m: module_name(n, type(m)) for n, m in model.named_modules()}
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
        run()
    except Exception:  # noqa: BLE001, S110  the failure itself was recorded by the caller
        pass
    finally:
        for h in handles:
            h.remove()
    return stack[-1] if stack else module_name("", type(model))


def trace_error(model, run, exc: Exception) -> ExportError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return ExportError(failing_module(model, run), "<python forward>",
                       f"torch.export could not trace it: {type(exc).__name__}: {first[:400]}",
                       tried="torch.export (non-strict) of the eval model",
                       advice="branch on shapes, not on tensor values (torch.where / torch.cond for value-"
                       "dependent choices), return tensors only, and avoid .item()/.tolist()/numpy in forward")
