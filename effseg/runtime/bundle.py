"""The deployment bundle: model.onnx (+ model.engine) and meta.json, and the checks that
make a corrupt or mismatched bundle an error instead of a wrong answer.

The schema lives here, not in effseg.export, so the torch-free runtime and the exporter
share one validator. meta.json, format_version 1:

    format "effseg-bundle", format_version, effseg_version, architecture, num_classes,
    classes [num_classes names], palette [num_classes [r, g, b]],
    input {name, channels, height, width, dtype float32|float16, dynamic_batch, dynamic_hw},
    output {name, kind logits|labels}, normalize {mean, std} (0-255 units, per channel),
    tile {size, overlap}, opset, precision fp32|fp16|int8,
    files {file name: {sha256, bytes[, tensorrt_version for model.engine]}}, created.
"""
from __future__ import annotations

import hashlib
import json
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
_SHA256 = re.compile(r"[0-9a-f]{64}")


class BundleError(ValueError):
    """A bundle that cannot be trusted or used: bad meta.json, a file that is missing or
    does not match its recorded hash, or a version this effseg cannot run."""


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _version_tuple(text: str, key: str) -> tuple[int, ...]:
    m = re.match(r"(\d+)\.(\d+)", text)
    if not m:
        raise BundleError(f"meta.json: key {key!r} must be a version like '0.1.0', got {text!r}")
    return int(m.group(1)), int(m.group(2))


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
    b = _version_tuple(bundle_version, "effseg_version")
    i = _version_tuple(installed, "effseg_version")
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
    _want(overlap < size, "tile.overlap", f"smaller than tile.size ({size})", overlap)

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
    check_effseg_version(meta["effseg_version"])
    if verify:
        verify_files(folder, meta["files"])
    return Bundle(folder, meta)
