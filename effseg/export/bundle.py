"""Writing a deployment bundle: model.onnx (+ model.engine, + any external-data files)
and meta.json with the sha256 of every file. Torch-free, like the runtime that reads it;
the schema and its validation live in effseg.runtime.bundle."""
from __future__ import annotations

import datetime
import json
import os
import shutil
from pathlib import Path

from .._version import __version__
from ..runtime.bundle import (
    ENGINE_NAME,
    FORMAT,
    FORMAT_VERSION,
    META_NAME,
    ONNX_NAME,
    sha256_file,
    validate_meta,
)
from ..runtime.images import IMAGENET_MEAN, IMAGENET_STD

# GeoSeg's ISPRS Vaihingen/Potsdam colours: impervious surfaces, building, low
# vegetation, tree, car, clutter.
ISPRS_PALETTE = ((255, 255, 255), (0, 0, 255), (0, 255, 255), (0, 255, 0), (255, 255, 0), (255, 0, 0))


def default_palette(num_classes: int) -> list[list[int]]:
    """ISPRS colours first, then the PASCAL VOC bit-interleaved colour map (its channel
    values stay below 255, so no colour repeats an ISPRS one; distinct for 256 more)."""
    colours = [list(c) for c in ISPRS_PALETTE[:num_classes]]
    i = 0
    while len(colours) < num_classes:
        r = g = b = 0
        c = i
        for bit in range(7, -1, -1):
            r |= ((c >> 0) & 1) << bit
            g |= ((c >> 1) & 1) << bit
            b |= ((c >> 2) & 1) << bit
            c >>= 3
        colours.append([r, g, b])
        i += 1
    return colours


def bundle_meta(*, architecture: str, num_classes: int, input_shape, classes=None, palette=None,
                input_name: str = "input", output_name: str = "logits", output_kind: str = "logits",
                dtype: str = "float32", dynamic_batch: bool = False, dynamic_hw: bool = False,
                mean=IMAGENET_MEAN, std=IMAGENET_STD, tile_size: int | None = None, tile_overlap: int | None = None,
                opset: int = 17, precision: str = "fp32", pixel_dtype: str = "uint8", scale: float = 1.0,
                nodata: float | None = None) -> dict:
    """meta.json's content (format_version 1) without "files", which write_bundle fills.

    input_shape is (C, H, W) or (N, C, H, W): the exported size (the optimum when
    dynamic). tile_size defaults to the larger of H and W, tile_overlap to
    min(64, tile_size // 4); mean/std are in the units of pixel x scale (0-255 for 8-bit
    images). pixel_dtype, scale and nodata are written only when they differ from the
    8-bit defaults, so bundles that do not use them stay as older effseg wrote them.
    """
    shape = tuple(input_shape)
    if len(shape) == 4:
        shape = shape[1:]
    if len(shape) != 3 or not all(isinstance(d, int) and d > 0 for d in shape):
        raise ValueError(f"input_shape must be (C, H, W) or (N, C, H, W) with positive integers, got {input_shape!r}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    c, h, w = shape
    if classes is None:
        classes = [f"class_{i}" for i in range(num_classes)]
    if palette is None:
        palette = default_palette(num_classes)
    if tile_size is None:
        tile_size = max(h, w)
    if tile_overlap is None:
        tile_overlap = min(64, tile_size // 4)
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "effseg_version": __version__,
        "architecture": architecture, "num_classes": num_classes,
        "classes": [str(x) for x in classes],
        "palette": [[int(v) for v in col] for col in palette],
        "input": {"name": input_name, "channels": c, "height": h, "width": w, "dtype": dtype,
                  "dynamic_batch": bool(dynamic_batch), "dynamic_hw": bool(dynamic_hw)},
        "output": {"name": output_name, "kind": output_kind},
        "normalize": {"mean": [float(x) for x in mean], "std": [float(x) for x in std]},
        "tile": {"size": tile_size, "overlap": tile_overlap},
        "opset": opset, "precision": precision,
        "files": {ONNX_NAME: {"sha256": "0" * 64, "bytes": 0}},
        "created": _now(),
    }
    if pixel_dtype != "uint8":
        meta["input"]["pixel_dtype"] = pixel_dtype
    if scale != 1.0:
        meta["input"]["scale"] = scale
    if nodata is not None:
        meta["input"]["nodata"] = nodata
    # Same checks as the loader, so a bad argument fails here and not on the device.
    validate_meta(meta)
    del meta["files"]
    return meta


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _external_data_files(onnx_path: Path) -> list[str]:
    """File names an ONNX model keeps its large weights in (ONNX external data), which
    must travel with it. Without the onnx package there is no way to tell: none."""
    try:
        import onnx
    except ImportError:
        return []
    model = onnx.load(str(onnx_path), load_external_data=False)
    names = set()
    for t in model.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            for kv in t.external_data:
                if kv.key == "location":
                    names.add(kv.value)
    for name in names:
        if Path(name).name != name:
            raise ValueError(f"onnx_path {onnx_path} keeps weights in {name!r}, outside its folder; "
                             "save it with its external data next to the model")
    return sorted(names)


def _copy(src: Path, dst: Path) -> None:
    if src.resolve() != dst.resolve():
        shutil.copyfile(src, dst)


def write_bundle(out_dir, onnx_path, *, meta: dict, engine_path=None, tensorrt_version=None,
                 extra_files=None) -> Path:
    """Copy the model (and engine) into out_dir and write meta.json with their hashes.

    meta comes from bundle_meta. An engine needs the TensorRT version that built it:
    tensorrt_version ("10.3.0"), or the installed TensorRT's when not given.
    extra_files: paths of further files to copy and hash (the native-scan form's
    graphs, which meta's "native_scan" section names).
    """
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"onnx_path {str(onnx_path)!r} is not a file")
    if not isinstance(meta, dict):
        raise TypeError(f"meta must be a dict from bundle_meta, got {type(meta).__name__}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = [ONNX_NAME]
    _copy(onnx_path, out / ONNX_NAME)
    for extra in _external_data_files(onnx_path):
        _copy(onnx_path.parent / extra, out / extra)
        names.append(extra)
    engine_version = None
    if engine_path is not None:
        engine_path = Path(engine_path)
        if not engine_path.is_file():
            raise FileNotFoundError(f"engine_path {str(engine_path)!r} is not a file")
        if tensorrt_version is None:
            from ..runtime.tensorrt_runner import tensorrt_version as installed

            v = installed()
            if v is None:
                raise ValueError("engine_path given but tensorrt does not import here: pass tensorrt_version "
                                 "(the version that built the engine, e.g. '10.3.0')")
            tensorrt_version = ".".join(map(str, v))
        engine_version = str(tensorrt_version)
        _copy(engine_path, out / ENGINE_NAME)
        names.append(ENGINE_NAME)
    elif (out / ENGINE_NAME).exists():
        # An engine left from an earlier bundle would not match this model.
        (out / ENGINE_NAME).unlink()
    for extra in extra_files or ():
        extra = Path(extra)
        if not extra.is_file():
            raise FileNotFoundError(f"extra_files: {str(extra)!r} is not a file")
        _copy(extra, out / extra.name)
        names.append(extra.name)
    files = {}
    for name in names:
        files[name] = {"sha256": sha256_file(out / name), "bytes": (out / name).stat().st_size}
    if engine_version is not None:
        files[ENGINE_NAME]["tensorrt_version"] = engine_version
    full = dict(meta, files=files)
    full.setdefault("created", _now())
    validate_meta(full)
    from ..runtime.segmented import validate_section

    validate_section(full)
    tmp = out / (META_NAME + ".tmp")
    tmp.write_text(json.dumps(full, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out / META_NAME)
    return out
