"""Model zoo, eager CPU (or GPU) latency at 512x512, batch 1: every registered model with
effseg's kernels vs the same architecture and weights on the reference ops.

Writes bench/results/models-<device>.json. Run:
    python bench/bench_models.py [--device cuda] [--models unetformer,cmunet] [--quick]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from effseg.bench.models import bench_models
from effseg.bench.script import common_parser, prepare, reexec_with_raised_malloc, result_path, write_json

RESULTS = Path(__file__).resolve().parent / "results"


def main():
    reexec_with_raised_malloc(sys.argv, "bench/bench_models.py")
    p = common_parser(__doc__, "128x128, one repeat (a smoke run)")
    p.add_argument("--models", default=None, help="comma-separated names (default: all)")
    p.add_argument("--size", type=int, default=512)
    args = prepare(p.parse_args())
    names = args.models.split(",") if args.models else None
    size = 128 if args.quick else args.size
    result = bench_models(names, args.device, size=size,
                          repeats=1 if args.quick else args.repeats)
    summary = {r["model"]: dict(effseg_ms=round(r["effseg_ms"], 1), ref_ms=round(r["ref_ms"], 1),
                                speedup=round(r["speedup_vs_ref"], 2))
               for r in result["results"]}
    result["summary"] = summary
    out = write_json(result, result_path(RESULTS, "models", args))
    print(json.dumps(summary, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
