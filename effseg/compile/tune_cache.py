"""Autotune records on disk: one JSON file per decision key, under
$EFFSEG_CACHE/autotune (default ~/.cache/effseg/autotune), as Inductor and oneDNN keep
theirs. Written atomically (a temporary file renamed into place), so a reader never sees
half a record; a file that is unreadable, of another schema or filed under another key
is ignored with a warning, and the decision is measured again and written over it.
"""
from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path

from ..runtime.cache import cache_dir
from .tune_key import SCHEMA, digest


def default_dir() -> Path:
    return cache_dir() / "autotune"


class TuneCache:
    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_dir()

    def path(self, key: dict) -> Path:
        return self.root / f"{key['backend']}-{digest(key)[:24]}.json"

    def load(self, key: dict, names) -> dict | None:
        """The stored record for key, or None when there is none or it cannot be used
        (with a warning naming the file and why). names: the candidates a record's choice
        must be among."""
        path = self.path(key)
        try:
            text = path.read_text()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            why, rec = f"unreadable ({exc})", None
        else:
            try:
                rec = json.loads(text)
            except ValueError as exc:
                why = f"not JSON ({exc})"
            else:
                why = _invalid(rec, key, names)
        if why:
            _ignored(path, why)
            return None
        return rec

    def store(self, key: dict, record: dict) -> Path | None:
        """Write record (with its key) atomically; None, with a warning, when the folder
        cannot be written (the decision then holds for this process only)."""
        path = self.path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(fd, "w") as f:
                    json.dump({**record, "schema": SCHEMA, "key": key}, f, indent=1, sort_keys=True)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            warnings.warn(f"effseg.compile autotune: cannot write its record to {path} ({exc}); "
                          "the decision is not kept for the next run (set EFFSEG_CACHE to a "
                          "writable folder)", RuntimeWarning, stacklevel=3)
            return None
        return path


def _invalid(rec, key: dict, names) -> str | None:
    if not isinstance(rec, dict):
        return f"holds a {type(rec).__name__}, not a record"
    if rec.get("schema") != SCHEMA:
        return f"schema {rec.get('schema')!r}, expected {SCHEMA}"
    if rec.get("key") != key:
        return "filed under another key (another machine, model, shape or version)"
    if rec.get("choice") not in names:
        return f"its choice {rec.get('choice')!r} is not among the candidates {sorted(names)}"
    times = rec.get("times_ms")
    if not isinstance(times, dict) or not all(isinstance(v, (int, float)) for v in times.values()):
        return "times_ms is not a {candidate: milliseconds} mapping"
    return None


def _ignored(path: Path, why: str) -> None:
    warnings.warn(f"effseg.compile autotune: ignoring the record {path}: {why}; measuring "
                  "again and rewriting it", RuntimeWarning, stacklevel=4)
