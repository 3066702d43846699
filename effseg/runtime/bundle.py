"""The deployment bundle: model.onnx (+ model.engine) and meta.json, and the checks that
make a corrupt or mismatched bundle an error instead of a wrong answer.

The schema lives here, not in effseg.export, so the torch-free runtime and the exporter
share one validator. meta.json, format_version 1:

    format "effseg-bundle", format_version, effseg_version, architecture, num_classes,
    classes [num_classes names], palette [num_classes [r, g, b]],
    input {name, channels, height, width, dtype float32|float16, dynamic_batch, dynamic_hw
           [, pixel_dtype, scale, nodata]},
    output {name, kind logits|labels}, normalize {mean, std} (per channel, in the units of
    pixel x input.scale), tile {size, overlap <= size / 2}, opset, precision fp32|fp16|int8,
    files {file name: {sha256, bytes[, tensorrt_version for model.engine]}}, created.

Optional input keys (absent in older bundles, which means today's 8-bit behaviour):
    pixel_dtype  the integer image type the model was trained on: uint8 (default), uint16,
                 int16, uint32 or int32. Integer images of another type are refused, so a
                 16-bit scene never meets an 8-bit model's mean/std silently. Float images
                 are taken as already in these units.
    scale        multiplies every pixel before mean/std (default 1): a uint16 bundle
                 trained on 8-bit statistics says 1/257; one trained in native units says 1.
    nodata       a pixel value (all bands equal to it) that marks missing data (default
                 none); an image file's own nodata value takes precedence.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from .._version import __version__

FORMAT = "effseg-bundle"
FORMAT_VERSION = 1
META_NAME = "meta.json"
ONNX_NAME = "model.onnx"
ENGINE_NAME = "model.engine"
PRECISIONS = ("fp32", "fp16", "int8")
INPUT_DTYPES = ("float32", "float16")
OUTPUT_KINDS = ("logits", "labels")
PIXEL_DTYPES = ("uint8", "uint16", "int16", "uint32", "int32")
_SHA256 = re.compile(r"[0-9a-f]{64}")
# major.minor.patch with an optional pre-release/dev/local suffix: 0.1.0, 0.1.0rc1,
# 0.1.0.dev3, 0.1.0-beta.2, 0.1.0+g1234. Anything else is malformed, never a prefix guess.
_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)(?:[.+-]?[0-9A-Za-z]+(?:[.+-][0-9A-Za-z]+)*)?")


class BundleError(ValueError):
    """A bundle that cannot be trusted or used: bad meta.json, a file that is missing or
    does not match its recorded hash, or a version this effseg cannot run."""


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _version_tuple(text, key: str) -> tuple[int, int, int]:
    m = _VERSION.fullmatch(text) if isinstance(text, str) else None
    if not m:
        raise BundleError(f"meta.json: key {key!r} must be a version major.minor.patch with an optional suffix "
                          f"(like '0.1.0' or '0.1.0rc1'), got {text!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


# --- schema checks: each error names the dotted key ------------------------------------

def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _get(d: dict, key: str, prefix: str = ""):
    if key not in d:
        raise BundleError(f"meta.json: required key {prefix + key!r} is missing")
    return d[key]


def _want(ok: bool, key: str, expected: str, value) -> None:
    if not ok:
        raise BundleError(f"meta.json: key {key!r} must be {expected}, got {value!r}")


def _section(meta: dict, key: str) -> dict:
    v = _get(meta, key)
    _want(isinstance(v, dict), key, "an object", v)
    return v


def _int(d: dict, key: str, prefix: str, minimum: int) -> int:
    v = _get(d, key, prefix)
    _want(_is_int(v) and v >= minimum, prefix + key, f"an integer >= {minimum}", v)
    return v


def _str(d: dict, key: str, prefix: str = "", choices=None) -> str:
    v = _get(d, key, prefix)
    if choices is None:
        _want(isinstance(v, str) and v != "", prefix + key, "a non-empty string", v)
    else:
        _want(v in choices, prefix + key, " or ".join(map(repr, choices)), v)
    return v


def _bool(d: dict, key: str, prefix: str) -> bool:
    v = _get(d, key, prefix)
    _want(isinstance(v, bool), prefix + key, "true or false", v)
    return v


def check_format_version(meta) -> None:
    """Format first: a newer bundle must say 'upgrade', not fail on some renamed key."""
    if not isinstance(meta, dict):
        raise BundleError(f"meta.json must hold a JSON object, got {type(meta).__name__}")
    fmt = _get(meta, "format")
    _want(fmt == FORMAT, "format", repr(FORMAT), fmt)
    ver = _get(meta, "format_version")
    _want(_is_int(ver) and ver >= 1, "format_version", "a positive integer", ver)
    if ver > FORMAT_VERSION:
        raise BundleError(f"bundle has format_version {ver}, but effseg {__version__} reads format_version "
                          f"{FORMAT_VERSION} at most: upgrade effseg (pip install -U effseg)")


def check_effseg_version(bundle_version: str, installed: str = __version__) -> None:
    """Bundles from the same major.minor (or an older minor of the same major) run;
    one from a newer effseg, or another major, does not. Under 0.x a minor is a major."""
    b = _version_tuple(bundle_version, "effseg_version")[:2]
    i = _version_tuple(installed, "effseg_version")[:2]
    if b > i:
        raise BundleError(f"bundle was written by effseg {bundle_version}, newer than this effseg {installed}: "
                          "upgrade effseg (pip install -U effseg)")
    if b[0] != i[0] or (i[0] == 0 and b[1] != i[1]):
        raise BundleError(f"bundle was written by effseg {bundle_version}, which this effseg {installed} cannot "
                          "run: export the model again with this version")


def validate_meta(meta) -> dict:
    """Check meta.json's keys and types (format_version 1); returns meta unchanged.

    Keys beyond the schema are allowed, so a minor addition does not break older readers.
    """
    check_format_version(meta)
    _str(meta, "effseg_version")
    _version_tuple(meta["effseg_version"], "effseg_version")
    _str(meta, "architecture")
    k = _int(meta, "num_classes", "", 1)
    classes = _get(meta, "classes")
    _want(isinstance(classes, list) and len(classes) == k and all(isinstance(c, str) for c in classes),
          "classes", f"a list of {k} names (num_classes)", classes)
    palette = _get(meta, "palette")
    _want(isinstance(palette, list) and len(palette) == k
          and all(isinstance(c, list) and len(c) == 3 and all(_is_int(x) and 0 <= x <= 255 for x in c)
                  for c in palette),
          "palette", f"a list of {k} [r, g, b] colours with 0-255 integers", palette)

    inp = _section(meta, "input")
    _str(inp, "name", "input.")
    ch = _int(inp, "channels", "input.", 1)
    _int(inp, "height", "input.", 1)
    _int(inp, "width", "input.", 1)
    _str(inp, "dtype", "input.", INPUT_DTYPES)
    _bool(inp, "dynamic_batch", "input.")
    _bool(inp, "dynamic_hw", "input.")
    if "pixel_dtype" in inp:
        _str(inp, "pixel_dtype", "input.", PIXEL_DTYPES)
    if "scale" in inp:
        v = inp["scale"]
        _want(_is_num(v) and math.isfinite(v) and v > 0, "input.scale", "a positive finite number", v)
    if inp.get("nodata") is not None:
        v = inp["nodata"]
        _want(_is_num(v) and math.isfinite(v), "input.nodata", "a finite number or null", v)
    out = _section(meta, "output")
    _str(out, "name", "output.")
    _str(out, "kind", "output.", OUTPUT_KINDS)

    norm = _section(meta, "normalize")
    for key in ("mean", "std"):
        v = _get(norm, key, "normalize.")
        _want(isinstance(v, list) and len(v) == ch and all(_is_num(x) for x in v), f"normalize.{key}",
              f"a list of {ch} numbers (one per input channel)", v)
    _want(all(x > 0 for x in norm["std"]), "normalize.std", "positive", norm["std"])
    tile = _section(meta, "tile")
    size = _int(tile, "size", "tile.", 1)
    overlap = _int(tile, "overlap", "tile.", 0)
    # Beyond half a tile the tile count grows as (size / (size - overlap))^2 for no gain:
    # overlap 127 on 128-px tiles is 16,641 runs for a 256x256 image.
    _want(overlap <= size // 2, "tile.overlap", f"at most half of tile.size ({size} // 2 = {size // 2})", overlap)

    _int(meta, "opset", "", 1)
    _str(meta, "precision", "", PRECISIONS)
    files = _section(meta, "files")
    _want(ONNX_NAME in files, "files", f"an object listing {ONNX_NAME!r}", sorted(files))
    for name, entry in files.items():
        # Plain names only: a bundle must not point at files outside its folder.
        _want(isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name,
              "files", "keyed by plain file names", name)
        key = f"files.{name}"
        _want(isinstance(entry, dict), key, "an object", entry)
        _want(isinstance(entry.get("sha256"), str) and bool(_SHA256.fullmatch(entry["sha256"])),
              key + ".sha256", "64 lower-case hex digits", entry.get("sha256"))
        _int(entry, "bytes", key + ".", 0)
        if name == ENGINE_NAME:
            _str(entry, "tensorrt_version", key + ".")
    _str(meta, "created")
    return meta


# --- loading -------------------------------------------------------------------------

@dataclass(frozen=True)
class Bundle:
    """A loaded, verified bundle. `meta` is meta.json as read."""
    path: Path
    meta: dict = field(repr=False)

    @property
    def onnx_path(self) -> Path:
        return self.path / ONNX_NAME

    @property
    def engine_path(self) -> Path | None:
        return self.path / ENGINE_NAME if ENGINE_NAME in self.meta["files"] else None

    @property
    def engine_tensorrt_version(self) -> str | None:
        entry = self.meta["files"].get(ENGINE_NAME)
        return entry["tensorrt_version"] if entry else None

    @property
    def num_classes(self) -> int:
        return self.meta["num_classes"]

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    @property
    def palette(self) -> list[list[int]]:
        return [list(c) for c in self.meta["palette"]]

    @property
    def input(self) -> dict:
        return dict(self.meta["input"])

    @property
    def output(self) -> dict:
        return dict(self.meta["output"])

    @property
    def pixel_dtype(self) -> str:
        return self.meta["input"].get("pixel_dtype", "uint8")

    @property
    def scale(self) -> float:
        return float(self.meta["input"].get("scale", 1.0))

    @property
    def nodata(self) -> float | None:
        return self.meta["input"].get("nodata")

    def read_verified(self, name: str) -> bytes:
        """A listed file's bytes, checked again against meta.json: what is hashed is
        exactly what gets run, even if the file changed after load_bundle."""
        entry = self.meta["files"][name]
        data = (self.path / name).read_bytes()
        actual = hashlib.sha256(data).hexdigest()
        if actual != entry["sha256"]:
            raise BundleError(f"bundle file {name} does not match meta.json: sha256 expected {entry['sha256']}, "
                              f"actual {actual}; refusing to run it")
        return data


def verify_files(folder: Path, files: dict) -> None:
    for name, entry in files.items():
        p = folder / name
        if not p.is_file():
            raise BundleError(f"bundle file {name} is missing from {str(folder)!r} (listed in meta.json "
                              f"with sha256 {entry['sha256']})")
        size = p.stat().st_size
        actual = sha256_file(p)
        if size != entry["bytes"] or actual != entry["sha256"]:
            raise BundleError(f"bundle file {name} does not match meta.json: sha256 expected {entry['sha256']}, "
                              f"actual {actual}; bytes expected {entry['bytes']}, actual {size}. "
                              "The file is corrupt or was changed: refusing to run it")


def load_bundle(path, *, verify: bool = True) -> Bundle:
    """Read and check a bundle folder (or its meta.json): schema, format and effseg
    versions, and the sha256 and size of every listed file (verify=False skips only the
    hashes, for tools that inspect a bundle without running it)."""
    p = Path(path)
    folder = p.parent if p.name == META_NAME and p.is_file() else p
    meta_path = folder / META_NAME
    if not folder.is_dir():
        raise BundleError(f"bundle {str(p)!r} is not a folder")
    if not meta_path.is_file():
        raise BundleError(f"bundle {str(folder)!r} has no {META_NAME}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{meta_path} is not valid JSON: {exc}") from exc
    validate_meta(meta)
    from .segmented import validate_section  # it imports this module

    validate_section(meta)
    check_effseg_version(meta["effseg_version"])
    if verify:
        verify_files(folder, meta["files"])
    return Bundle(folder, meta)
