"""Building a TensorRT engine from an exported ONNX model (TensorRT 10.x and 11.x).

The decisions (workspace size, optimisation-profile shapes, which builder flags a
version has, whether the ONNX can give the asked precision) are pure functions tested
without TensorRT; build_engine only strings them through TensorRT's builder.
"""
from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from ..runtime.tensorrt_runner import MIN_TENSORRT, import_tensorrt, parse_version

PRECISIONS = ("fp32", "fp16", "int8")
_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}

__all__ = ["InputSpec", "build_engine", "builder_flags", "onnx_input_specs", "parse_size", "parse_version",
           "precision_problem", "profile_shapes", "strongly_typed"]


def parse_size(workspace) -> int:
    """'1GiB' / '512MiB' / '2GB' / '1.5GiB' / 1073741824 -> bytes (KiB = 1024, KB = 1000)."""
    if isinstance(workspace, bool):
        raise TypeError(f"workspace must be bytes (int) or a size like '1GiB', got {workspace!r}")
    if isinstance(workspace, int):
        n = workspace
    elif isinstance(workspace, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", workspace)
        unit = m.group(2).lower() if m else ""
        if not m or (unit and unit not in _UNITS):
            raise ValueError(f"workspace must be a size like '1GiB', '512MiB' or '2GB' (units: B, KB, MB, GB, "
                             f"TB, KiB, MiB, GiB, TiB), got {workspace!r}")
        n = int(float(m.group(1)) * _UNITS[unit or "b"])
    else:
        raise TypeError(f"workspace must be bytes (int) or a size like '1GiB', got {type(workspace).__name__}")
    if n <= 0:
        raise ValueError(f"workspace must be positive, got {workspace!r}")
    return n


class InputSpec(NamedTuple):
    """An ONNX input: name and dims, an int where static, None where dynamic (a symbolic
    name or unknown size in the ONNX)."""
    name: str
    shape: tuple


def onnx_input_specs(model) -> list[InputSpec]:
    """The graph inputs of an onnx.ModelProto (initializers excluded)."""
    inits = {t.name for t in model.graph.initializer}
    specs = []
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                     for d in inp.type.tensor_type.shape.dim)
        specs.append(InputSpec(inp.name, dims))
    return specs


def _shape_arg(value, arg: str, rank: int, name: str):
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != rank:
        raise ValueError(f"{arg} must be a sequence of {rank} dims for input {name!r}, got {value!r}")
    for d in value:
        if not isinstance(d, int) or isinstance(d, bool) or d < 1:
            raise ValueError(f"{arg} must hold positive integers for input {name!r}, got {value!r}")
    return tuple(value)


def profile_shapes(input_spec, min_shape=None, opt_shape=None, max_shape=None):
    """(min, opt, max) shapes of an optimisation profile for one input.

    input_spec: an InputSpec or a plain sequence of dims (int static; None, -1, 0 or a
    string dynamic). Static dims are taken from the ONNX (a given shape must agree);
    every dynamic dim needs min_shape and max_shape; opt_shape defaults to max_shape
    (TensorRT picks its kernels for opt). min <= opt <= max is checked dim by dim.
    """
    if isinstance(input_spec, InputSpec):
        name, dims = input_spec
    else:
        name, dims = "input", input_spec
    dims = tuple(d if isinstance(d, int) and not isinstance(d, bool) and d > 0 else None for d in dims)
    rank = len(dims)
    mn = _shape_arg(min_shape, "min_shape", rank, name)
    op = _shape_arg(opt_shape, "opt_shape", rank, name)
    mx = _shape_arg(max_shape, "max_shape", rank, name)
    out = {"min_shape": [], "opt_shape": [], "max_shape": []}
    for i, static in enumerate(dims):
        given = {"min_shape": mn and mn[i], "opt_shape": op and op[i], "max_shape": mx and mx[i]}
        if static is not None:
            for arg, v in given.items():
                if v is not None and v != static:
                    raise ValueError(f"{arg}[{i}] is {v}, but dim {i} of input {name!r} is static: {static}")
                out[arg].append(static)
            continue
        lacking = [arg for arg in ("min_shape", "max_shape") if given[arg] is None]
        if lacking:
            raise ValueError(f"dim {i} of input {name!r} is dynamic (shape {_fmt(dims)}): give "
                             f"{' and '.join(lacking)} (and opt_shape) for it")
        lo, hi = given["min_shape"], given["max_shape"]
        mid = given["opt_shape"] if given["opt_shape"] is not None else hi
        if not lo <= mid <= hi:
            raise ValueError(f"dim {i} of input {name!r} needs min_shape <= opt_shape <= max_shape, "
                             f"got {lo}, {mid}, {hi}")
        out["min_shape"].append(lo)
        out["opt_shape"].append(mid)
        out["max_shape"].append(hi)
    return tuple(out["min_shape"]), tuple(out["opt_shape"]), tuple(out["max_shape"])


def _fmt(dims) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in dims) + ")"


def strongly_typed(version) -> bool:
    """TensorRT 11 builds every network strongly typed: tensor types come from the ONNX."""
    return parse_version(version)[0] >= 11


def builder_flags(version, precision: str) -> list[str]:
    """Names of trt.BuilderFlag to set for this TensorRT version and precision.

    10.x: FP16 for fp16; INT8 (+ FP16 for the layers outside Q/DQ pairs) for int8.
    11.x: none, the precision is the ONNX's own (fp16 export, Q/DQ nodes).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    v = parse_version(version)
    if v < MIN_TENSORRT:
        raise ValueError(f"TensorRT {'.'.join(map(str, v))} is not supported: effseg builds engines with "
                         "TensorRT 10 or newer")
    if strongly_typed(v) or precision == "fp32":
        return []
    return ["FP16"] if precision == "fp16" else ["FP16", "INT8"]


def precision_problem(model, version, precision: str) -> str | None:
    """Why this ONNX cannot become a `precision` engine with this TensorRT, or None.

    INT8 needs explicit Q/DQ nodes (effseg.export.quantize): implicit calibration is gone
    in 11 and not offered by effseg in 10. On 11, fp16 needs an fp16 export (to_onnx
    with dtype="fp16"), since no builder flag can lower an fp32 graph.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "int8":
        if not any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node):
            return ("precision='int8' needs an ONNX with QuantizeLinear/DequantizeLinear nodes: quantize it "
                    "first with effseg.export.quantize")
    elif precision == "fp16" and strongly_typed(version):
        float16 = 10  # onnx.TensorProto.FLOAT16
        typed = [i.type.tensor_type.elem_type for i in model.graph.input]
        typed += [t.data_type for t in model.graph.initializer]
        if float16 not in typed:
            return (f"TensorRT {'.'.join(map(str, parse_version(version)))} builds strongly typed networks: "
                    "an fp16 engine needs the fp16 ONNX (effseg.export.to_onnx(..., dtype='fp16'))")
    return None


def _parser_errors(parser) -> str:
    lines = []
    for i in range(parser.num_errors):
        e = parser.get_error(i)
        node = getattr(e, "node_name", lambda: "")() or f"#{e.node()}"
        op = getattr(e, "node_operator", lambda: "")()
        lines.append(f"  node {node}{f' ({op})' if op else ''}: {e.desc()}")
    return "\n".join(lines)


def build_engine(onnx_path, engine_path, *, workspace="1GiB", timing_cache=None, min_shape=None, opt_shape=None,
                 max_shape=None, precision: str = "fp32", progress: bool = True) -> Path:
    """Build and write a serialized TensorRT engine (TensorRT 10.x or 11.x).

    workspace: the builder's scratch-memory limit ('1GiB', bytes). timing_cache: a file
    read when present and written after the build, so later builds on the same device
    skip kernel timing. min/opt/max_shape: the optimisation profile of a dynamic input
    (see profile_shapes; a dict {input name: shape} when the model has several inputs).
    precision: fp32, fp16 or int8. On TensorRT 10 fp16/int8 set builder flags; TensorRT
    11 networks are strongly typed and have no such flags, so an fp16 engine there needs
    the fp16 ONNX (to_onnx(dtype="fp16")) and int8 always needs the Q/DQ ONNX from
    effseg.export.quantize. Engines only run on the TensorRT version (and GPU) that
    built them: build on the device (Jetson: JetPack's TensorRT).
    """
    import onnx

    ws = parse_size(workspace)
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"onnx_path {str(onnx_path)!r} is not a file")
    model = onnx.load(str(onnx_path), load_external_data=False)
    specs = onnx_input_specs(model)
    profiles = {}
    for spec in specs:
        pick = [s.get(spec.name) if isinstance(s, Mapping) else s for s in (min_shape, opt_shape, max_shape)]
        if len(specs) > 1 and not all(s is None or isinstance(s, Mapping) for s in (min_shape, opt_shape, max_shape)):
            raise ValueError(f"the model has {len(specs)} inputs: give min/opt/max_shape as dicts by input name")
        shapes = profile_shapes(spec, *pick)
        if None in spec.shape:
            profiles[spec.name] = shapes

    trt = import_tensorrt()
    version = parse_version(trt.__version__)
    flags = builder_flags(version, precision)
    problem = precision_problem(model, version, precision)
    if problem:
        raise ValueError(problem)
    del model

    logger = trt.Logger(trt.Logger.INFO if progress else trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in 10+
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        raise RuntimeError(f"TensorRT {trt.__version__}'s ONNX parser rejected {onnx_path.name}:\n"
                           f"{_parser_errors(parser)}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, ws)
    for name in flags:
        flag = getattr(trt.BuilderFlag, name, None)
        if flag is not None:
            config.set_flag(flag)
    if profiles:
        profile = builder.create_optimization_profile()
        for name, (mn, op, mx) in profiles.items():
            profile.set_shape(name, mn, op, mx)
        config.add_optimization_profile(profile)
    cache_path = Path(timing_cache) if timing_cache is not None else None
    if cache_path is not None:
        data = cache_path.read_bytes() if cache_path.is_file() else b""
        config.set_timing_cache(config.create_timing_cache(data), ignore_mismatch=False)
    if progress:
        print(f"building a TensorRT {trt.__version__} {precision} engine from {onnx_path.name} ...",
              file=sys.stderr, flush=True)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT {trt.__version__} could not build an engine from {onnx_path.name} "
                           "(see its log above)")
    engine_path = Path(engine_path)
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    engine_path.write_bytes(bytes(serialized))
    if cache_path is not None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        cache_path.write_bytes(bytes(config.get_timing_cache().serialize()))
    return engine_path
