"""Resampling ops that ONNX or TensorRT cannot take as they are, rewritten for export.

Bicubic and antialiased interpolation and adaptive average pooling to a size that does
not divide the input are linear and separable: out = A_h @ x @ A_w^T, with A_h (out_h x
in_h) and A_w (out_w x in_w). At a static input size the matrices are constants, computed
once by running PyTorch's own op on identity matrices, so the export is two MatMuls that
ONNX Runtime and TensorRT (any precision, INT8 included) run, and it reproduces PyTorch's
definition exactly: same kernel (bicubic a = -0.75), same border clamping, same antialias
support; the only difference is the summation order (about 1e-7 relative in fp32).
(ONNX's Resize 'cubic' maps to TensorRT's bicubic layer, whose border handling the parser
does not promise to match; antialias=1 is opset 18 only and TensorRT rejects it.)

Adaptive max pooling has no ONNX function in the exporter: it becomes a max over each
output row's input rows, then over each column's input columns (the windows PyTorch
uses, separable because max over a rectangle is max of maxes).

Under a dynamic height or width these matrices cannot be constants: `refusals` names
the module and op and the export stops with the reason instead of a wrong graph.
"""
from __future__ import annotations

import operator

import torch

aten = torch.ops.aten


def _static(*sizes) -> bool:
    return all(isinstance(s, int) for s in sizes)


def _axis_matrix(op_call, n_in: int) -> torch.Tensor:
    """(out x in) matrix of a 1-D resampling: op_call resizes (in, 1, n_in, 2) along the
    height only. The input is e_j, constant along a width of 2 kept at 2 (PyTorch's
    antialias kernel misreads a width of 1; these ops' weights sum to 1, so a constant
    row stays constant and the first column is the response)."""
    with torch.no_grad():
        eye = torch.eye(n_in, dtype=torch.float64).reshape(n_in, 1, n_in, 1).repeat(1, 1, 1, 2)
        cols = op_call(eye)[..., 0]  # (n_in, 1, out): column j of A is the response to e_j
        return cols.reshape(n_in, -1).t().contiguous()


def _scale(scales, i):
    return None if not scales else scales[i]


def _resize_matrices(x, output_size, scale_factors, fn):
    """A_h, A_w (float64) for an interpolate call given as aten's .vec overload
    (output_size or scale_factors) on x; fn(t, size, scales) is the op on (N, 1, n, 1)."""
    h, w = x.shape[-2:]
    if output_size is not None:
        oh, ow = output_size
    else:
        oh, ow = int(h * scale_factors[0]), int(w * scale_factors[1])
    # PyTorch passes the user's scale factor on to the kernel (it sets the source
    # coordinate step); with an explicit size it is in/out.
    sh, sw = _scale(scale_factors, 0), _scale(scale_factors, 1)
    a_h = _axis_matrix(lambda t: fn(t, (oh, 2), (sh, None)), h)
    a_w = _axis_matrix(lambda t: fn(t, (ow, 2), (sw, None)), w)
    return a_h, a_w


_INTERP = {
    aten.upsample_bicubic2d.vec: aten.upsample_bicubic2d.default,
    aten._upsample_bilinear2d_aa.vec: aten._upsample_bilinear2d_aa.default,
    aten._upsample_bicubic2d_aa.vec: aten._upsample_bicubic2d_aa.default,
}


def _interp_matrices(node, v):
    x_args = list(node.args) + [None] * (4 - len(node.args))
    _, output_size, align_corners, scale_factors = x_args[:4]
    op = _INTERP[node.target]

    def fn(t, size, scales):
        return op(t, list(size), align_corners, scales[0], scales[1])
    return _resize_matrices(v, output_size, scale_factors, fn)


def _pool_windows(n_in: int, n_out: int) -> list[tuple[int, int]]:
    # PyTorch's adaptive windows: [floor(i * in / out), ceil((i + 1) * in / out)).
    return [((i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)) for i in range(n_out)]


def _avg_matrix(n_in: int, n_out: int) -> torch.Tensor:
    a = torch.zeros(n_out, n_in, dtype=torch.float64)
    for i, (s, e) in enumerate(_pool_windows(n_in, n_out)):
        a[i, s:e] = 1.0 / (e - s)
    return a


def _pair(size, x):
    size = list(size) if isinstance(size, (list, tuple)) else [size, size]
    h, w = x.shape[-2:]
    return [h if s is None else s for s in size[:1]] + [w if s is None else s for s in size[1:2]]


def _avg_matrices(node, v):
    oh, ow = _pair(node.args[1], v)
    h, w = v.shape[-2:]
    if h % oh == 0 and w % ow == 0:
        return None  # the exporter's AveragePool / GlobalAveragePool form is exact
    return _avg_matrix(h, oh), _avg_matrix(w, ow)


_MATRIX_FORMS = {**{k: _interp_matrices for k in _INTERP},
                 aten.adaptive_avg_pool2d.default: _avg_matrices,
                 aten._adaptive_avg_pool2d.default: _avg_matrices}


def run(gm) -> dict:
    """Rewrite, in the unlifted exported graph gm, each static-size bicubic / antialiased
    interpolation and each non-dividing adaptive average pool into A_h @ x @ A_w^T with
    constant matrices (new frozen parameters of gm)."""
    from ..passes._graph import add_param, erase_dead

    counts = {}
    for node in list(gm.graph.nodes):
        form = _MATRIX_FORMS.get(node.target) if node.op == "call_function" else None
        v = node.args[0].meta.get("val") if form and node.args and hasattr(node.args[0], "meta") else None
        if not isinstance(v, torch.Tensor) or v.dim() != 4 or not _static(*v.shape[-2:]):
            continue
        mats = form(node, v)
        if mats is None:
            continue
        a_h, a_w = mats
        ah = add_param(gm, node, a_h.to(v.dtype), "resample_h")
        awt = add_param(gm, node, a_w.t().contiguous().to(v.dtype), "resample_w")
        with gm.graph.inserting_before(node):
            rows = gm.graph.call_function(aten.matmul.default, (ah, node.args[0]))
            out = gm.graph.call_function(aten.matmul.default, (rows, awt))
        out.meta.update({k: node.meta[k] for k in ("val", "nn_module_stack", "stack_trace") if k in node.meta})
        node.replace_all_uses_with(out)
        erase_dead(gm, [node])
        name = node.target._overloadpacket.__name__.lstrip("_")
        counts[name] = counts.get(name, 0) + 1
    return {"pass": "resample_matrices", "changed": sum(counts.values()), **counts}


def _max_axis(x, dim: int, n_out: int):
    n_in = x.shape[dim]
    if n_out == 1:
        return x.amax(dim, keepdim=True)
    parts = [x.narrow(dim, s, e - s).amax(dim, keepdim=True) for s, e in _pool_windows(n_in, n_out)]
    return torch.cat(parts, dim)


def adaptive_max_pool2d(x, output_size):
    oh, ow = _pair(output_size, x)
    if not _static(*x.shape[-2:], oh, ow):
        return NotImplemented
    out = _max_axis(_max_axis(x, -2, oh), -1, ow)
    # The indices output is dead: `refusals` stopped any export that reads it.
    return out, torch.zeros(out.shape, dtype=torch.int64, device=x.device)


def lowerings() -> dict:
    """Decompositions for run_decompositions (the matrix forms are a graph pass, `run`:
    a decomposition cannot add constant tensors to an exported program)."""
    return {aten.adaptive_max_pool2d.default: adaptive_max_pool2d}


# op -> (what it is, why only a static size works, what the user can change)
_STATIC_ONLY = {
    "upsample_bicubic2d": "bicubic interpolation",
    "_upsample_bilinear2d_aa": "antialiased bilinear interpolation",
    "_upsample_bicubic2d_aa": "antialiased bicubic interpolation",
    "adaptive_max_pool2d": "adaptive max pooling",
}


def _op_name(node) -> str:
    t = node.target
    return getattr(getattr(t, "_overloadpacket", None), "__name__", None) or str(t)


def refusals(ep) -> list[tuple]:
    """(node, reason, advice) for each resampling node of `ep` that export cannot take."""
    out = []
    for node in ep.graph.nodes:
        if node.op != "call_function":
            continue
        name = _op_name(node)
        x = node.args[0] if node.args else None
        v = x.meta.get("val") if hasattr(x, "meta") else None
        dynamic = isinstance(v, torch.Tensor) and not _static(*v.shape[-2:])
        if name in _STATIC_ONLY and dynamic:
            out.append((node, f"{_STATIC_ONLY[name]} under a dynamic height/width: effseg exports it as a "
                        "constant resampling matrix (ONNX's cubic/antialias Resize does not parse in TensorRT "
                        "or differs from PyTorch), which needs a fixed input size",
                        "export with a fixed input size (dynamic_hw=False), or use mode='bilinear' "
                        "without antialias"))
        elif name in ("adaptive_avg_pool2d", "_adaptive_avg_pool2d") and dynamic:
            oh, ow = _pair(node.args[1], v)
            if (oh, ow) != (1, 1):
                # The exporter turns even a dividing one into an AveragePool whose kernel is
                # fixed at the traced size: wrong (other output size) at every other size.
                out.append((node, f"adaptive average pooling to {oh}x{ow} under a dynamic height/width: "
                            "its windows depend on the input size, and ONNX's AveragePool has a fixed "
                            "kernel (only 1x1, a global mean, is size-independent)",
                            "export with a fixed input size (dynamic_hw=False), or pool to 1x1"))
        elif name == "adaptive_max_pool2d" and any(
                u.target is operator.getitem and u.args[1] == 1 and u.users for u in node.users):
            out.append((node, "adaptive max pooling with return_indices: ONNX has no adaptive max pool and "
                        "TensorRT rejects MaxPool's Indices output",
                        "drop return_indices=True (MaxUnpool is not exportable either)"))
    return out


MATRIX_TARGETS = tuple(_MATRIX_FORMS)
