"""Selective scan: ref vs C++ vs chunked (CPU) or Triton vs chunked (GPU), side by side.

Writes bench/results/selective_scan-<device>.json. Run:  python bench/bench_selective_scan.py [--device cuda]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

# glibc's default malloc returns big buffers to the OS and page-faults them back on every
# call (measured 10-25x slower eager PyTorch here); raise the thresholds before start-up.
if os.environ.get("MALLOC_MMAP_THRESHOLD_") is None:
    os.environ.update(MALLOC_MMAP_THRESHOLD_="17179869184", MALLOC_TRIM_THRESHOLD_="17179869184")
    os.execv(sys.executable, [sys.executable, *sys.argv])

from effseg.bench.ops import SCAN_LENGTHS_FULL, bench_selective_scan  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def targets(result: dict) -> dict:
    """The issue's CPU targets at L=4096: C++ fwd >= 50x ref, <= 4x the stream time."""
    rows = {(r["length"], r["mode"], r["backend"]): r for r in result["results"]}
    cpp, ref = rows.get((4096, "fwd", "cpp")), rows.get((4096, "fwd", "ref"))
    if not (cpp and ref):
        return {}
    speedup = ref["median_ms"] / cpp["median_ms"]
    return {"cpp_fwd_speedup_vs_ref_L4096": speedup,
            "cpp_fwd_x_stream_time_L4096": cpp["x_stream_time"],
            "cpp_fwd_x_dram_stream_time_L4096": cpp["x_dram_stream_time"],
            "speedup_met": speedup >= 50,
            "stream_met": min(cpp["x_stream_time"], cpp["x_dram_stream_time"]) <= 4}


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cpu")
    p.add_argument("--lengths", type=int, nargs="+", default=list(SCAN_LENGTHS_FULL))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    result = bench_selective_scan(args.device, tuple(args.lengths), ("fwd", "fwd+bwd"), repeats=args.repeats)
    result["targets"] = targets(result)
    out = Path(args.out) if args.out else RESULTS / f"selective_scan-{args.device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["targets"], indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
