"""`effseg.export.to_onnx`: a segmentation model to an ONNX file that ONNX Runtime runs and
TensorRT's parser takes, checked against the PyTorch model before it is handed over.

effseg's custom ops become standard ops (the selective scan as all-chunks-at-once
CumSum/Exp/MatMul, linear attention as MatMul, depthwise conv as grouped Conv);
torch.onnx's optimiser folds constants and BatchNorm into the preceding convolutions.
"""
from __future__ import annotations

import copy
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from .._parity import ParityError, check_parity
from ..runtime.sessions import ort_session
from .guards import check_guard_shapes, sample_shapes
from .onnx import export_onnx, onnx_op_types

DTYPES = {"fp32": torch.float32, "fp16": torch.float16}
OPSETS = (17, 18)
# Largest input side a dynamic-H/W export is declared for; sizes are multiples of this.
DEFAULT_MAX_HW = 2048
MAX_BATCH = 64


@dataclass
class ExportReport:
    path: str
    opset: int
    dtype: str
    input_shape: tuple
    output: str
    dynamic_batch: bool
    dynamic_hw: bool
    max_hw: int | None
    nodes: int
    op_counts: dict
    bytes: int
    export_s: float
    parity: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


class _Head(nn.Module):
    """The model's main output, or its per-pixel argmax as int32 (TensorRT-friendly)."""

    def __init__(self, model: nn.Module, argmax: bool):
        super().__init__()
        self.model, self.argmax = model, argmax

    def forward(self, x):
        out = self.model(x)
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out.argmax(1).to(torch.int32) if self.argmax else out


def _input_shape(input_shape) -> tuple:
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if shape is None or len(shape) not in (3, 4) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape):
        raise ValueError(f"input_shape must be (N, C, H, W) or (C, H, W) of positive ints, got {input_shape!r}")
    return shape if len(shape) == 4 else (1, *shape)


def _size_multiple(model) -> int:
    m = getattr(model, "size_multiple", 32)
    return m if isinstance(m, int) and m > 0 else 32


def _dynamic_shapes(shape, model, dynamic_batch, dynamic_hw, max_hw):
    dims = {}
    if dynamic_batch:
        dims[0] = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    if dynamic_hw:
        m = _size_multiple(model)
        for axis, name in ((2, "height"), (3, "width")):
            if shape[axis] % m:
                raise ValueError(f"input_shape: with dynamic_hw the {name} must be a multiple of {m} "
                                 f"(the model's size_multiple), got {shape[axis]}")
            dims[axis] = m * torch.export.Dim(f"{name}_blocks", min=1, max=max(1, max_hw // m))
    return {"x": dims} if dims else None


def _check_args(model, path, dtype, opset, max_hw):
    if hasattr(model, "eager") and isinstance(model.eager, nn.Module):
        model = model.eager  # an effseg.compile result: export the model it was built from
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    if opset not in OPSETS:
        raise ValueError(f"opset must be one of {OPSETS}, got {opset!r}")
    if not isinstance(max_hw, int) or isinstance(max_hw, bool) or max_hw < 32:
        raise ValueError(f"max_hw must be an int >= 32, got {max_hw!r}")
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"path: folder {str(path.parent)!r} does not exist")
    return model, path


def _log(progress, msg):
    if progress:
        print(f"[effseg export] {msg}", file=sys.stderr, flush=True)


def to_onnx(model: nn.Module, path, *, input_shape, dynamic_batch: bool = False, dynamic_hw: bool = False,
            opset: int = 17, dtype: str = "fp32", argmax: bool = False, max_hw: int = DEFAULT_MAX_HW,
            check: bool = True, progress: bool = False) -> ExportReport:
    """Export `model` for an input of `input_shape` ((N, C, H, W) or (C, H, W)) to `path`.

    dynamic_batch / dynamic_hw: leave the batch / height and width free (H and W then
    stay multiples of the model's size_multiple, up to max_hw). dtype "fp16": a typed
    half-precision graph (weights and activations fp16; the selective scan keeps an fp32
    state), which is what TensorRT 11 needs to build in half precision. argmax: output
    the int32 class map (N, H, W) instead of logits.
    check: run the file in ONNX Runtime (CPU) on a random input (and, for a dynamic
    export, on a second shape too) and compare with the PyTorch model in fp32; fp32 must agree within 1e-4 x the output scale, fp16 within
    2e-2 with >= 99.5% argmax agreement; otherwise effseg.ParityError with the figures.
    """
    model, path = _check_args(model, path, dtype, opset, max_hw)
    shape = _input_shape(input_shape)
    in_ch = getattr(model, "in_channels", None)
    if isinstance(in_ch, int) and shape[1] != in_ch:
        raise ValueError(f"input_shape has {shape[1]} channels but the model takes {in_ch} (in_channels)")
    tdtype = DTYPES[dtype]
    gen = torch.Generator().manual_seed(0)
    x32 = torch.randn(shape, generator=gen)
    net = _Head(copy.deepcopy(model).cpu().eval(), argmax).to(tdtype)
    dyn = _dynamic_shapes(shape, model, dynamic_batch, dynamic_hw, max_hw)
    _log(progress, f"tracing {type(model).__name__} at {shape} ({dtype}, opset {opset})")
    t0 = time.perf_counter()
    # torch.export specialises dims of size 1 (and 1 block), so dynamic dims trace at >= 2.
    m = _size_multiple(model)
    trace_shape = (max(2, shape[0]) if dynamic_batch else shape[0], shape[1],
                   *((max(2 * m, d) if dynamic_hw else d) for d in shape[2:]))
    example = torch.randn(trace_shape, generator=gen).to(tdtype)
    from ..ops.selective_scan_parallel import max_scan_length

    # A scan over a dynamic feature map can be as long as max_hw^2 steps (stride 1).
    with max_scan_length(max_hw * max_hw):
        samples = sample_shapes(shape, batch_max=MAX_BATCH if dynamic_batch else None,
                                hw_multiple=m if dynamic_hw else None, hw_max=max_hw) if dyn else None
        guards = []
        proto = export_onnx(net, (example,), path, opset=18, dynamic_shapes=dyn, shape_samples=samples,
                            guard_report=guards,
                            input_names=["input"], output_names=["labels" if argmax else "logits"])
    import onnx

    if opset == 17:
        from .opset import downgrade_to_17

        proto = downgrade_to_17(proto)
    _name_dynamic_dims(proto)
    onnx.save(proto, str(path))
    export_s = time.perf_counter() - t0
    ops = {}
    for n in proto.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    report = ExportReport(path=str(path), opset=opset, dtype=dtype, input_shape=shape,
                          output="labels" if argmax else "logits", dynamic_batch=dynamic_batch,
                          dynamic_hw=dynamic_hw, max_hw=max_hw if dynamic_hw else None,
                          nodes=len(proto.graph.node), op_counts=dict(sorted(ops.items())),
                          bytes=path.stat().st_size, export_s=round(export_s, 2))
    if check:
        _log(progress, "checking ONNX Runtime against PyTorch")
        report.parity = check_onnx_parity(path, model, x32, dtype=dtype, argmax=argmax)
        if dynamic_batch or dynamic_hw:
            # A dim that tracing silently fixed would only show at another size.
            other = (shape[0] + 1 if dynamic_batch else shape[0], shape[1],
                     *((d + m if d + m <= max_hw else max(m, d - m)) if dynamic_hw else d for d in shape[2:]))
            try:
                fig = check_onnx_parity(path, model, torch.randn(other, generator=gen), dtype=dtype, argmax=argmax)
            except ParityError as exc:
                if not guards:
                    raise
                raise ParityError(f"{exc}\nat input shape {list(other)}; the export recorded shape guard(s) "
                                  f"{'; '.join(sorted({g for g, _ in guards})[:3])}, false across the dynamic "
                                  "range: the model (or a lowering) branches on the input size, so the graph "
                                  "is only right where the traced branch is; export with fixed sizes or make "
                                  "the branch unconditional", exc.figures) from exc
            report.parity["second_shape"] = {"shape": list(other), **fig}
            if guards:
                _log(progress, f"checking {len({g[1] for g in guards if g[1]})} shape(s) where a lowering guard is false")
                report.parity["guard_shapes"] = check_guard_shapes(
                    path, model, guards, parity=lambda p, mdl, x: check_onnx_parity(p, mdl, x, dtype=dtype, argmax=argmax))
    elif guards:
        warnings.warn(f"{path}: {len(guards)} shape guard(s) recorded while lowering are false somewhere in the "
                      "dynamic range and check=False skipped checking those shapes; first: "
                      f"{guards[0][0]} at {list(guards[0][1])}", stacklevel=2)
    _log(progress, f"wrote {path} ({report.nodes} nodes, {report.bytes / 1e6:.1f} MB, {export_s:.1f} s)")
    return report


def _name_dynamic_dims(proto) -> None:
    """torch.export's symbols (s77, 32*s75) become batch / height / width, the names
    TensorRT's profile errors and Netron show."""
    names = {}
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    for axis, name in ((0, "batch"), (2, "height"), (3, "width")):
        if axis < len(dims) and dims[axis].dim_param:
            names[dims[axis].dim_param] = name
    if not names:
        return
    for vi in [*proto.graph.input, *proto.graph.output, *proto.graph.value_info]:
        for d in vi.type.tensor_type.shape.dim:
            if d.dim_param in names:
                d.dim_param = names[d.dim_param]


def ort_run(path, x):
    """One ONNX Runtime CPU run of the file on a numpy input."""
    sess = ort_session(path)
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def check_onnx_parity(path, model: nn.Module, x32: torch.Tensor, *, dtype: str = "fp32",
                      argmax: bool = False) -> dict:
    """Compare the ONNX file in ONNX Runtime with the fp32 PyTorch model on x32.

    Returns the figures; raises effseg.ParityError when they are outside effseg's one
    parity rule (effseg._parity; for an argmax output, fewer than 99.5% of the pixels
    getting the same class).
    """
    ref_model = _Head(copy.deepcopy(model).cpu().float().eval(), False)
    with torch.no_grad():
        want = ref_model(x32)
    got = torch.from_numpy(ort_run(path, x32.to(DTYPES[dtype]).numpy()))
    fig = check_parity(want, got, DTYPES[dtype], f"ONNX Runtime on {path}", labels=argmax)
    fig["shape"] = list(got.shape)
    return fig


def export_op_types(path) -> set:
    import onnx

    return onnx_op_types(onnx.load(str(path)))
