"""Regenerate the README's performance section from the JSON under bench/results/.

    python bench/report.py            # rewrite README.md between the perf markers
    python bench/report.py --check    # exit 1 if README.md is not what the JSON gives
    python bench/report.py --print    # print the section
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's report code, whatever is installed

from effseg.bench.perf_report import render, splice


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default=str(ROOT / "bench" / "results"))
    p.add_argument("--readme", default=str(ROOT / "README.md"))
    g = p.add_mutually_exclusive_group()
    g.add_argument("--check", action="store_true", help="exit 1 if the README is stale")
    g.add_argument("--print", action="store_true", help="print the section only")
    args = p.parse_args(argv)
    section = render(args.results)
    if args.print:
        print(section, end="")
        return 0
    readme = Path(args.readme)
    old = readme.read_text()
    new = splice(old, section)
    if args.check:
        if new != old:
            print(f"{readme} is stale: run python bench/report.py", file=sys.stderr)
            return 1
        print(f"{readme} is current")
        return 0
    if new != old:
        readme.write_text(new)
        print(f"updated {readme}")
    else:
        print(f"{readme} already current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
