"""python -m resnet_np exercise {list,start,check,grade}: the kit's command line.

Exit codes: 0 the check passed (or the command did its job), 1 the check found
problems, 2 a usage error (unknown exercise, missing file, bad option).
"""
import argparse
import os
import sys

from .catalogue import CATALOGUE
from .checker import check
from .grading import grade
from .templates import start


def _parser():
    p = argparse.ArgumentParser(prog="python -m resnet_np exercise",
                                description="Exercises with a checker that names the bug.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="print the catalogue")
    s = sub.add_parser("start", help="write NAME.py to fill in")
    s.add_argument("name", choices=list(CATALOGUE))
    s.add_argument("--out", default=".", help="folder to write NAME.py into (default: here)")
    s.add_argument("--force", action="store_true", help="overwrite an existing NAME.py")
    c = sub.add_parser("check", help="check FILE as exercise NAME")
    c.add_argument("name", choices=list(CATALOGUE))
    c.add_argument("file")
    c.add_argument("--cases", choices=("public", "hidden", "all"), default="public")
    c.add_argument("--json", action="store_true", help="print the diagnosis as one JSON line")
    g = sub.add_parser("grade", help="check every *.py in DIR, one row each")
    g.add_argument("name", choices=list(CATALOGUE))
    g.add_argument("dir")
    g.add_argument("--csv", help="write the rows as CSV to this file")
    g.add_argument("--json", help="write the rows and full reports as JSON to this file")
    g.add_argument("--timeout", type=float, default=60.0, help="seconds per submission")
    g.add_argument("--cases", choices=("public", "hidden", "all"), default="all")
    return p


def main(argv):
    args = _parser().parse_args(argv)
    if args.command == "list":
        width = max(len(n) for n in CATALOGUE)
        for name, ex in CATALOGUE.items():
            print(f"{name:<{width}}  {ex.summary}")
        return 0
    if args.command == "start":
        try:
            path = start(args.name, args.out, overwrite=args.force)
        except FileExistsError as error:
            print(error, file=sys.stderr)
            return 2
        print(f"wrote {path}: fill in the code between the markers, then run python {path}")
        return 0
    if args.command == "check":
        if not os.path.isfile(args.file):
            print(f"exercise check: expected a Python file, got {args.file!r} (no such file).",
                  file=sys.stderr)
            return 2
        diagnosis = check(args.name, args.file, cases=args.cases)
        print(diagnosis.to_json() if args.json else diagnosis)
        return 0 if diagnosis.passed else 1
    if not os.path.isdir(args.dir):
        print(f"exercise grade: expected a folder, got {args.dir!r}.", file=sys.stderr)
        return 2
    rows = grade(args.name, args.dir, args.timeout, args.cases, args.csv, args.json)
    for row in rows:
        print(f"{row['file']:<30} {'passed' if row['passed'] else 'failed':<7} "
              f"{row['score']:.2f}  {' '.join(row['codes'])}")
    print(f"{len(rows)} submission(s) graded")
    return 0
