"""Speed under load: effseg's C++ ops, a zoo model through effseg.compile (onnxruntime,
eager), a plain ORT session and torch eager, each timed quiet and then with one busy
competing process, under each waiting policy (spin = before, default, passive) side by
side. The code and the policies are in effseg/bench/contention.py.

    python bench/bench_contention.py [--quick] [--policies spin,default,passive] [--rows ...]
        [--out bench/results/contention-cpu.json]

Run it on an otherwise idle machine: a third process skews both phases.
"""
import argparse
import json
import sys
from pathlib import Path

from effseg.bench.script import reexec_with_raised_malloc

reexec_with_raised_malloc(sys.argv, "bench/bench_contention.py")

from effseg.bench import contention as C  # noqa: E402
from effseg.bench.script import allocator, write_json  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny shapes, 3 calls per phase: a smoke run")
    ap.add_argument("--policies", default=",".join(C.POLICIES),
                    help=f"comma-separated, each in its own process (default {','.join(C.POLICIES)})")
    ap.add_argument("--rows", default=None, help=f"comma-separated subset of {','.join(C.ROWS)} (default all)")
    ap.add_argument("--repeats", type=int, default=None, help="timed calls per row and phase (default 15, quick 3)")
    ap.add_argument("--model", default="unetformer-dw", help="the zoo model of the model rows")
    ap.add_argument("--out", default=None,
                    help="the JSON file (default bench/results/contention-cpu[-quick].json)")
    a = ap.parse_args(argv)
    try:
        policies, rows = C.parse_policies(a.policies), C.parse_rows(a.rows)
    except ValueError as exc:
        ap.error(str(exc))
    repeats = a.repeats if a.repeats is not None else (3 if a.quick else 15)
    if repeats < 1:
        ap.error(f"--repeats must be >= 1, got {repeats}")
    results = {p: C.run_policy(p, rows, a.quick, repeats, a.model) for p in policies}
    from effseg._timing import machine
    from effseg.bench.train import _isa

    out = {"bench": "contention", "device": "cpu", "quick": a.quick, "model": a.model,
           "shapes": C.shapes(a.quick), "repeats": repeats, "rows": rows, "busy_competitor": C.BUSY_LOOP,
           "fair_share_limit": C.FAIR_SHARE_LIMIT, "machine": {**machine("cpu"), "isa": _isa()},
           "allocator": allocator(),
           "method": "per row the median of `repeats` calls after one warm-up, all rows quiet, then all rows "
                     "with the competitor running; one fresh process per policy",
           "policies": results, "targets": C.targets(results)}
    path = Path(a.out) if a.out else RESULTS / f"contention-cpu{'-quick' if a.quick else ''}.json"
    print(json.dumps(out["targets"], indent=2))
    print(f"wrote {write_json(out, path)}")
    print(C.report(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
