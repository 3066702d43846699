"""Shape guards that a dynamic-shape export took on silently.

torch.export checks its trace's guards against the declared dynamic ranges, but guards
raised later, while run_decompositions lowers effseg's ops to standard ops, are only
recorded: the exported program asserts them at call time, and the ONNX graph drops them.
A lowering that branches on a size (a pad that is 0 at the traced length, a chunk count
of 1 that a broadcast takes as fixed) then gives a graph that is wrong at other sizes,
with nothing to say so. `violated_guards` evaluates the recorded guards at sample input
shapes across the dynamic range; `check_guard_shapes` then runs the ONNX file against
PyTorch at the shapes where a guard is false, so that such an export fails at export time.
Most guards torch records are harmless "this size is not 1" assumptions (ONNX ops
broadcast at run time), which is why a false guard alone does not refuse the export.
"""
from __future__ import annotations

import math
import re

_INPUT_REF = re.compile(r"L\['([^']+)'\]")


class _Shape:
    """Stands in for the input tensor in a guard's code: `x.size()[i]`."""

    def __init__(self, shape):
        self._shape = tuple(shape)

    def size(self):
        return self._shape


def _guard_code(ep) -> list[str]:
    return list(getattr(ep, "_guards_code", None) or [])


def violated_guards(ep, shapes, input_name: str | None = None) -> list[tuple[str, tuple]]:
    """(guard, shape) for each recorded guard of `ep` that is false at some shape of
    `shapes` (shapes of the program's single tensor input), one entry per guard.

    A guard whose code cannot be evaluated here is reported with shape () so that an
    unverifiable specialisation is not taken for a safe one.
    """
    codes = _guard_code(ep)
    shapes = [tuple(int(d) for d in s) for s in shapes]
    out = []
    for code in codes:
        names = set(_INPUT_REF.findall(code))
        if input_name is not None and names - {input_name}:
            out.append((code, ()))
            continue
        try:
            fn = compile(code, "<guard>", "eval")
        except SyntaxError:
            out.append((code, ()))
            continue
        for shape in shapes:
            env = {"L": {n: _Shape(shape) for n in names}, "math": math, "max": max, "min": min}
            try:
                ok = bool(eval(fn, {"__builtins__": {}}, env))
            except Exception:  # noqa: BLE001  any failure to evaluate is reported, not ignored
                out.append((code, ()))
                break
            if not ok:
                out.append((code, shape))
                break
    return out


def sample_shapes(shape, *, batch_max: int | None, hw_multiple: int | None, hw_max: int | None) -> list[tuple]:
    """Input shapes spread over the dynamic range: every batch up to 4 and the largest;
    every height and width block count up to 16, then powers of two and the largest,
    in all combinations (evaluating a guard costs microseconds)."""
    b, c, h, w = shape
    batches = sorted({*range(1, min(4, batch_max) + 1), batch_max}) if batch_max else [b]
    if hw_multiple:
        top = max(1, hw_max // hw_multiple)
        blocks = sorted({*range(1, min(16, top) + 1), *(2 ** k for k in range(5, 12) if 2 ** k < top), top})
        sides = [k * hw_multiple for k in blocks]
        hs, ws = sides, sides
    else:
        hs, ws = [h], [w]
    return [(bb, c, hh, ww) for bb in batches for hh in hs for ww in ws]


def check_guard_shapes(path, model, guards, *, parity, limit: int = 3) -> list[dict]:
    """Run `parity(path, model, x)` (raising on disagreement) at up to `limit` distinct
    shapes where a guard of `guards` is false. A shape the PyTorch model itself rejects
    is skipped (it is not an input the model takes); ONNX Runtime failing where PyTorch
    runs raises RuntimeError naming the guard. Returns one record per shape."""
    import torch

    from .._parity import ParityError

    by_shape = {}
    for guard, shape in guards:
        if shape:
            by_shape.setdefault(shape, guard)
    out = []
    gen = torch.Generator().manual_seed(1)
    for shape, guard in list(by_shape.items())[:limit]:
        x = torch.randn(shape, generator=gen)
        try:
            with torch.no_grad():
                model(x)
        except Exception as exc:  # noqa: BLE001  the model does not take this size: nothing to check
            out.append({"shape": list(shape), "guard": guard, "skipped": f"PyTorch: {type(exc).__name__}"})
            continue
        try:
            fig = parity(path, model, x)
        except ParityError as exc:
            raise ParityError(f"{exc}\nat input shape {list(shape)}, where the shape guard {guard} recorded "
                              "while tracing the model or lowering its ops is false: the export fixed a "
                              "dynamic dimension (a Python `if` on a size, or a lowering that branches)",
                              exc.figures) from exc
        except Exception as exc:
            raise RuntimeError(f"ONNX Runtime fails at input shape {list(shape)} where PyTorch runs; the shape "
                               f"guard {guard} recorded while lowering is false there, so the export fixed a "
                               f"dynamic dimension: {type(exc).__name__}: {str(exc)[:300]}") from exc
        out.append({"shape": list(shape), "guard": guard, **fig})
    return out
