"""Regenerate the model-zoo table in README.md (parameters at num_classes=6, GFLOPs of one
512x512 RGB image, FlopCounterMode convention). Run after changing a model:

    python scripts/zoo_table.py            # print the table
    python scripts/zoo_table.py --write    # replace it in README.md between the markers
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from effseg.models.summary import TABLE_END, TABLE_START, markdown_table, model_rows

README = Path(__file__).resolve().parent.parent / "README.md"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--write", action="store_true", help="update README.md in place")
    p.add_argument("--size", type=int, default=512)
    args = p.parse_args()
    table = markdown_table(model_rows(size=args.size, progress=True), args.size)
    if not args.write:
        print(table)
        return 0
    text = README.read_text()
    if TABLE_START not in text or TABLE_END not in text:
        print(f"README.md lacks the markers {TABLE_START!r} ... {TABLE_END!r}", file=sys.stderr)
        return 1
    head, rest = text.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    README.write_text(f"{head}{TABLE_START}\n{table}\n{TABLE_END}{tail}")
    print(f"updated {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
