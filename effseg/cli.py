"""The `effseg` command."""
from __future__ import annotations

import argparse
import json
import sys


def _cmd_info(args) -> int:
    from .info import backend_report

    report = backend_report()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for key in ("effseg", "python", "platform", "torch", "torch_threads"):
        print(f"{key:14s} {report[key]}")
    print("backends:")
    for name, b in report["backends"].items():
        mark = "yes" if b["usable"] else "no "
        print(f"  {name:12s} {mark}  {b['detail']}")
    return 0


def _cmd_bench(args) -> int:
    from .bench.ops import run_op_bench

    result = run_op_bench(args.op, device=args.device, quick=not args.full,
                          out=args.out, repeats=args.repeats)
    if args.out is None:
        print(json.dumps(result, indent=2))
    return 0


def _cmd_models(args) -> int:
    from .models.summary import markdown_table, model_rows

    rows = model_rows(flops=args.flops, size=args.size, progress=args.flops)
    if args.json:
        print(json.dumps(rows, indent=2))
    elif args.flops:
        print(markdown_table(rows, args.size))
    else:
        for r in rows:
            print(f"{r['name']:16s} {r['params_m']:7.2f} M  {r['summary']}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="effseg", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help="versions, devices and which backends are usable here")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(fn=_cmd_info)
    p = sub.add_parser("bench", help="benchmark effseg's kernels against their references")
    p.add_argument("--op", default="selective_scan", choices=["selective_scan"],
                   help="operation to benchmark (default: selective_scan)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--full", action="store_true", help="the full shape grid (slow) instead of the quick default")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per case (median reported)")
    p.add_argument("--out", default=None, help="write the JSON here instead of printing it")
    p.set_defaults(fn=_cmd_bench)
    p = sub.add_parser("models", help="the model zoo: names, parameters, what each follows")
    p.add_argument("--flops", action="store_true", help="also count GFLOPs (runs each model once)")
    p.add_argument("--size", type=int, default=512, help="image side for --flops (default 512)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(fn=_cmd_models)
    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
