"""A bundle's native-scan form run on the CPU: ONNX Runtime for the segments between the
cross selective scans, effseg's C++ scan (effseg.runtime.native_scan) at them.

meta.json's optional "native_scan" section (written by effseg.export.scan_split):
    {"constants": file, "segments": [file, ...], "steps": [{"segment": i} |
     {"scan": {"inputs": [8 names], "output": name, "delta_softplus": bool}}, ...]}
Every file is listed in meta.json's "files" with its sha256, like model.onnx; the
runtime builds each session from the verified bytes.
"""
from __future__ import annotations

import numpy as np

from . import native_scan
from .bundle import BundleError
from .sessions import ort_session

SECTION = "native_scan"


def _want(ok: bool, key: str, expected: str, value) -> None:
    if not ok:
        raise BundleError(f"meta.json: key {key!r} must be {expected}, got {value!r}")


def validate_section(meta: dict) -> dict | None:
    """meta.json's native_scan section checked (None when the bundle has none)."""
    sec = meta.get(SECTION)
    if sec is None:
        return None
    _want(isinstance(sec, dict), SECTION, "an object", sec)
    files = meta.get("files", {})

    def listed(v) -> bool:
        return isinstance(v, str) and v in files

    _want(listed(sec.get("constants")), f"{SECTION}.constants", "a file listed in 'files'", sec.get("constants"))
    segs = sec.get("segments")
    _want(isinstance(segs, list) and len(segs) > 0 and all(listed(s) for s in segs), f"{SECTION}.segments",
          "a non-empty list of files listed in 'files'", segs)
    steps = sec.get("steps")
    _want(isinstance(steps, list) and len(steps) > 0, f"{SECTION}.steps", "a non-empty list", steps)
    for k, st in enumerate(steps):
        key = f"{SECTION}.steps[{k}]"
        if isinstance(st, dict) and "segment" in st:
            i = st["segment"]
            _want(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(segs), key + ".segment",
                  f"an index into {SECTION}.segments (0..{len(segs) - 1})", i)
            continue
        sc = st.get("scan") if isinstance(st, dict) else None
        _want(isinstance(sc, dict), key, "{'segment': i} or {'scan': {...}}", st)
        ins = sc.get("inputs")
        _want(isinstance(ins, list) and len(ins) == 8 and all(isinstance(x, str) and x for x in ins),
              key + ".scan.inputs", "8 value names (u, delta, A, B, C, D, delta_bias, tmap)", ins)
        _want(isinstance(sc.get("output"), str) and sc["output"] != "", key + ".scan.output", "a value name",
              sc.get("output"))
        _want(isinstance(sc.get("delta_softplus"), bool), key + ".scan.delta_softplus", "true or false",
              sc.get("delta_softplus"))
    return sec


def section_files(meta: dict) -> set:
    """The files of the native-scan form (none when the bundle has no such form)."""
    sec = meta.get(SECTION)
    if not isinstance(sec, dict):
        return set()
    segs = sec.get("segments")
    names = [sec.get("constants"), *(segs if isinstance(segs, list) else [])]
    return {n for n in names if isinstance(n, str)}


def unavailable_reason(bundle, providers) -> str | None:
    """Why the bundle's native-scan form does not run here (None: it does)."""
    if SECTION not in bundle.meta:
        return "the bundle has no native-scan form"
    if providers is not None and list(providers) != ["CPUExecutionProvider"]:
        return "providers other than the CPU were asked for"
    if not native_scan.available():
        return native_scan.reason()
    from .sessions import import_ort

    if "CUDAExecutionProvider" in import_ort().get_available_providers():
        # Every scan would copy its operands to the host and back: the GPU graph wins.
        return "ONNX Runtime has CUDA here"
    return None


def _last_reads(steps, io) -> list[list[str]]:
    """For each step, the values read for the last time there: dropping them keeps the
    peak memory near the standard graph's rather than holding every activation."""
    reads = [io[st["segment"]][0] if "segment" in st else st["scan"]["inputs"] for st in steps]
    last = {}
    for k, names in enumerate(reads):
        for n in names:
            last[n] = k
    out = [[] for _ in steps]
    for n, k in last.items():
        out[k].append(n)
    return out


class SegmentedModel:
    """Called like OrtModel: (1, C, H, W) in, the output named in meta.json out.

    section: meta.json's native_scan section; read(file name) -> the file's bytes (a
    bundle's read_verified, so only hashed bytes run). open_session(name), when given,
    builds a segment's engine instead of ONNX Runtime on read(name) (effseg.compile's
    openvino backend): anything with get_inputs(), get_outputs() (items with .name) and
    run(output names, feed) -> arrays, as an ORT session has."""

    def __init__(self, section: dict, read, input_name: str, output_name: str, threads: int | None = None,
                 open_session=None):
        def session(name):
            if open_session is not None:
                return open_session(name)
            try:
                return ort_session(read(name), device="cpu", threads=threads, quiet=True)
            except BundleError:
                raise
            except Exception as exc:  # noqa: BLE001  ONNX Runtime's errors derive from Exception only
                raise BundleError(f"bundle file {name} matches its sha256 but ONNX Runtime cannot load it: "
                                  f"{type(exc).__name__}: {exc}") from exc

        consts = session(section["constants"])
        names = [o.name for o in consts.get_outputs()]
        self._constants = dict(zip(names, consts.run(names, {}))) if names else {}
        self._sessions = [session(s) for s in section["segments"]]
        self._io = [([i.name for i in s.get_inputs()], [o.name for o in s.get_outputs()]) for s in self._sessions]
        self._steps = section["steps"]
        self._drop = _last_reads(self._steps, self._io)
        self.name = "onnxruntime+native-scan"
        self.input_name, self.output_name = input_name, output_name
        first = self._steps[0]
        first_inputs = self._io[first["segment"]][0] if "segment" in first else first["scan"]["inputs"]
        if input_name not in first_inputs:
            raise BundleError(f"{SECTION}'s first step reads {first_inputs}, but meta.json names input "
                              f"{input_name!r}")

    @classmethod
    def from_bundle(cls, bundle, threads: int | None = None) -> "SegmentedModel":
        sec = validate_section(bundle.meta)
        if sec is None:
            raise BundleError(f"bundle {str(bundle.path)!r} has no {SECTION} section in meta.json")
        return cls(sec, bundle.read_verified, bundle.input["name"], bundle.output["name"], threads)

    def _take(self, env: dict, names, what: str) -> list:
        try:
            return [env[n] for n in names]
        except KeyError as exc:
            raise BundleError(f"{SECTION}: {what} reads {exc.args[0]!r}, which no earlier step produced") from None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.outputs(x, [self.output_name])[0]

    @property
    def counts(self) -> dict:
        return {"segments": len(self._sessions), "scans": sum("scan" in st for st in self._steps)}

    def outputs(self, x: np.ndarray, names) -> list:
        """The values `names` (graph outputs) for input x."""
        keep = set(names)
        env = dict(self._constants)
        env[self.input_name] = x
        for st, drop in zip(self._steps, self._drop):
            if "segment" in st:
                ins, outs = self._io[st["segment"]]
                feed = dict(zip(ins, self._take(env, ins, f"segment {st['segment']}")))
                results = self._sessions[st["segment"]].run(outs, feed)
                del feed
            elif st["scan"].get("op") == "SelectiveScan":  # effseg.compile's cut only
                sc = st["scan"]
                outs = sc["outputs"]
                ins = [None if n == "" else self._take(env, [n], "a scan")[0] for n in sc["inputs"]]
                results = list(native_scan.selective_scan(*ins, sc["delta_softplus"]))[:len(outs)]
            else:
                sc = st["scan"]
                outs = [sc["output"]]
                results = [native_scan.cross_selective_scan(*self._take(env, sc["inputs"], "a scan"),
                                                            sc["delta_softplus"])]
            for n in drop:
                if n not in self._constants and n not in keep:
                    env.pop(n, None)
            env.update(zip(outs, results))
        missing = [n for n in names if n not in env]
        if missing:
            raise BundleError(f"{SECTION}: no step produced the output {missing[0]!r}")
        return [env[n] for n in names]
