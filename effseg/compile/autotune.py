"""Autotune: effseg.compile keeps a rewrite only where it measured faster on this machine.

A pass that swaps an op for effseg's, or the whole rewritten graph, can win on one CPU
and lose on another (an AVX-512 VM and an AVX2 one have disagreed), so whether to apply
them is not assumed. For one input shape, the candidates are:

  effseg              every pass (what effseg.compile did before autotune)
  plain               none: eager runs the unchanged model; onnxruntime and openvino run
                      the export of the captured graph with no pass applied (the plain export)
  without <pass>      every pass but one that swapped ops in this graph

Each is built, checked against the reference (check=True), then all are timed in
alternating rounds within a budget; the fastest median wins, except that a rewritten
candidate must beat plain by more than Tuner.margin (2 %): a 2 s budget cannot tell
closer medians apart, and plain runs what the user's X runs, so a tie keeps the
backend no slower than X. The decision and its times
go to report() and to a record on disk (effseg.compile.tune_cache) keyed by machine,
model structure, shape, dtype, backend and options: a later compile with the same key
builds only the winner and measures nothing.

Off with compile(autotune=False) or EFFSEG_AUTOTUNE=0 (an explicit argument wins over
the variable). inductor, whose build is a compilation of tens of seconds per candidate,
gets two candidates only (effseg and plain: the graph torch.compile(freezing) would get);
tensorrt (minutes per engine) is not tuned and gets every pass.
"""
from __future__ import annotations

import copy
import datetime as _dt
import os
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

ENV = "EFFSEG_AUTOTUNE"
TUNED_BACKENDS = ("eager", "onnxruntime", "openvino", "inductor")
# Backends whose candidates are effseg and plain only: a build per candidate costs a compile.
TWO_CANDIDATES = ("inductor",)
_OFF = ("0", "off", "false", "no")
_ON = ("", "1", "on", "true", "yes")


@dataclass(frozen=True)
class Tuner:
    """How autotune runs. budget_s: seconds of timing for one decision (at least 3
    rounds are timed whatever it says); build_budget_s: seconds of building after which
    no further "without <pass>" candidate is built (effseg and plain always are);
    cache_dir: where records live (None: $EFFSEG_CACHE/autotune, else
    ~/.cache/effseg/autotune); cache=False neither reads nor writes records;
    measure(calls, budget_s) -> {name: [ms, ...]} replaces the timer (tests count and
    fake measurements through it); margin: the fraction by which a rewritten candidate's
    median must be below plain's to be chosen over it."""

    budget_s: float = 2.0
    build_budget_s: float = 60.0
    cache_dir: str | os.PathLike | None = None
    cache: bool = True
    measure: Callable | None = None
    margin: float = 0.02

    def __post_init__(self):
        for name in ("budget_s", "build_budget_s"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"Tuner {name} must be a positive number of seconds, got {v!r}")
        if self.cache_dir is not None and not isinstance(self.cache_dir, (str, os.PathLike)):
            raise TypeError(f"Tuner cache_dir must be a path or None, got {type(self.cache_dir).__name__}")
        if not isinstance(self.cache, bool):
            raise TypeError(f"Tuner cache must be a bool, got {type(self.cache).__name__}")
        if self.measure is not None and not callable(self.measure):
            raise TypeError(f"Tuner measure must be callable or None, got {type(self.measure).__name__}")
        m = self.margin
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 <= m < 1:
            raise ValueError(f"Tuner margin must be a fraction in [0, 1), got {m!r}")


def resolve(autotune) -> tuple[Tuner | None, str]:
    """compile's autotune argument -> (Tuner or None, why it is off)."""
    if autotune is None:
        value = os.environ.get(ENV, "").strip().lower()
        if value in _OFF:
            return None, f"{ENV}={os.environ[ENV]}"
        if value not in _ON:
            raise ValueError(f"{ENV} must be one of {list(_ON[1:] + _OFF)} (or unset), got "
                             f"{os.environ[ENV]!r}")
        return Tuner(), ""
    if autotune is True:
        return Tuner(), ""
    if autotune is False:
        return None, "autotune=False"
    if isinstance(autotune, Tuner):
        return autotune, ""
    raise TypeError(f"autotune must be None, a bool or an effseg.compile.Tuner, got {type(autotune).__name__}")


def interleaved(calls: dict, budget_s: float, min_rounds: int = 3, max_rounds: int = 50) -> dict:
    """{name: [ms, ...]}: rounds of two calls per candidate, of which the second is timed,
    the order reversed every other round. The untimed call takes the hand-over: the pool
    of the candidate before (an ORT session's, or OpenMP's) still spins for a while after
    its call and, on a 2-core machine, slows whichever call comes next several times over
    (measured 5-15x with several ORT sessions alternating)."""
    samples = {name: [] for name in calls}
    names = list(calls)
    end = time.perf_counter() + budget_s
    rounds = 0
    while rounds < min_rounds or (rounds < max_rounds and time.perf_counter() < end):
        for name in (names if rounds % 2 == 0 else names[::-1]):
            calls[name]()
            t0 = time.perf_counter()
            calls[name]()
            samples[name].append((time.perf_counter() - t0) * 1e3)
        rounds += 1
    return samples


def off_record(reason: str) -> dict:
    return {"choice": "effseg", "source": "off", "reason": reason}


def _skipped_passes() -> list:
    from ..passes import PASSES, pass_name

    return [{"pass": pass_name(p), "changed": 0, "skipped": True} for p in PASSES]


def _synced(fn, device) -> Callable:
    if device.type != "cuda":
        return fn

    def call():
        fn()
        torch.cuda.synchronize(device)
    return call


class _Candidates:
    """The variants of one capture: names, descriptions, and how to build each."""

    def __init__(self, model, cap, device, backend):
        from .. import passes

        self.model, self.cap, self.device, self.backend = model, cap, device, backend
        full = copy.deepcopy(cap.gm)
        records = passes.run_passes(full, device, backend)
        self.caps = {"effseg": replace(cap, gm=full, passes=records)}
        self.about = {"effseg": "every effseg pass"}
        changed = [r["pass"] for r in records if r["changed"]]
        if not changed:
            return
        self.caps["plain"] = None  # made on demand: eager runs the model itself
        self.about["plain"] = ("the unchanged model" if backend == "eager"
                               else "the captured graph with no pass applied")
        if backend in TWO_CANDIDATES:
            return
        for name in (r["pass"] for r in records if r["changed"] and r["pass"] in passes.SWAPS):
            if changed != [name]:  # else identical to plain
                self.caps[f"without {name}"] = None
                self.about[f"without {name}"] = f"every pass but {name}"

    @property
    def names(self) -> list:
        return list(self.caps)

    def capture(self, name):
        from .. import passes

        if self.caps[name] is None:
            if name == "plain":
                self.caps[name] = replace(self.cap, passes=_skipped_passes())
            else:
                gm = copy.deepcopy(self.cap.gm)
                skip = {name.split(" ", 1)[1]}
                self.caps[name] = replace(self.cap, gm=gm, passes=passes.run_passes(
                    gm, self.device, self.backend, skip=skip))
        return self.caps[name]

    def build(self, name, build: Callable):
        cap = self.capture(name)
        if name == "plain" and self.backend == "eager":
            return self.model, cap
        return build(cap.gm), cap


def tune(tuner: Tuner, model, cap, x, *, backend: str, device, options: dict, dynamic: bool,
         build: Callable, check: Callable | None):
    """(runner, capture with the passes applied, record) for the fastest candidate.

    cap: the capture of `model` before any pass; build(gm) -> runner on the backend;
    check(out) raises (effseg.ParityError) when a candidate's output is wrong, or None."""
    from .tune_cache import TuneCache
    from .tune_key import digest, tune_key

    t_start = time.perf_counter()
    cands = _Candidates(model, cap, device, backend)
    if len(cands.names) == 1:
        runner, chosen = cands.build("effseg", build)
        return runner, chosen, {"choice": "effseg", "source": "single candidate",
                                "reason": "no pass changed the graph", "candidates": cands.about}
    key = tune_key(cap.gm, x, backend, options, device, dynamic)
    store = TuneCache(tuner.cache_dir) if tuner.cache else None
    base = {"candidates": cands.about, "key": digest(key)[:16]}
    rec = store.load(key, cands.names) if store is not None else None
    if rec is not None:
        try:
            runner, chosen = cands.build(rec["choice"], build)
        except Exception as exc:  # noqa: BLE001  a winner that no longer builds is measured again
            warnings.warn(f"effseg.compile autotune: the recorded choice {rec['choice']!r} failed to "
                          f"build ({type(exc).__name__}: {exc}); measuring again", RuntimeWarning, stacklevel=3)
        else:
            return runner, chosen, {**base, "choice": rec["choice"], "source": "cache",
                                    "times_ms": rec["times_ms"], "measured_at": rec.get("measured_at"),
                                    "file": str(store.path(key)),
                                    "tune_s": round(time.perf_counter() - t_start, 3)}
    built, rejected, first_error = {}, {}, None
    for name in cands.names:
        if name.startswith("without ") and time.perf_counter() - t_start > tuner.build_budget_s:
            rejected[name] = f"not built: build budget of {tuner.build_budget_s:g} s spent"
            continue
        try:
            runner, chosen = cands.build(name, build)
            with torch.no_grad():
                out = runner(x)
            if check is not None:
                check(out, name)
        except Exception as exc:  # noqa: BLE001  a candidate that fails to build or to agree is not chosen
            first_error = first_error or exc
            rejected[name] = f"{type(exc).__name__}: {exc}"[:300]
            continue
        built[name] = (runner, chosen)
    if not built:
        raise first_error  # what compile raised before autotune: the default's own failure
    calls = {name: _synced(lambda r=r: r(x), device) for name, (r, _) in built.items()}
    with torch.no_grad():
        samples = (tuner.measure or interleaved)(calls, tuner.budget_s)
    _check_samples(samples, built)
    times = {name: round(statistics.median(samples[name]), 4) for name in built}
    choice = min(built, key=lambda n: times[n])  # ties: the earlier candidate (effseg first)
    kept_plain = ("plain" in built and choice != "plain"
                  and times[choice] > times["plain"] * (1 - tuner.margin))
    if kept_plain:
        choice = "plain"
    record = {"choice": choice, "times_ms": times,
              "runs": {name: len(samples[name]) for name in built},
              "measured_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    path = store.store(key, record) if store is not None else None
    runner, chosen = built[choice]
    margin = {"margin": tuner.margin}
    if kept_plain:
        margin["reason"] = f"no rewritten candidate beat plain by more than {tuner.margin:.0%}"
    return runner, chosen, {**base, **record, **margin, "source": "measured", "rejected": rejected,
                            "file": None if path is None else str(path),
                            "tune_s": round(time.perf_counter() - t_start, 3)}


def _check_samples(samples, names) -> None:
    ok = isinstance(samples, dict) and all(
        isinstance(samples.get(n), (list, tuple)) and samples[n]
        and all(isinstance(v, (int, float)) for v in samples[n]) for n in names)
    if not ok:
        raise TypeError(f"Tuner measure must return {{candidate: [milliseconds, ...]}} with a "
                        f"non-empty list for each of {sorted(names)}, got {samples!r}"[:400])
