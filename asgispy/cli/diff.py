"""``asgispy diff A.json B.json``: two recordings compared connection by connection.

Connections are paired by method, path and order (``--key route`` pairs them by the route the
framework matched instead, for APIs with ids in their paths); the output is the same as
``asgispy replay``'s, and the exit status is 1 when anything differs.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any, name: str, help: str) -> argparse.ArgumentParser:
    from asgispy.cli.replay import ignore_arguments

    parser: argparse.ArgumentParser = subparsers.add_parser(name, help=help, description=__doc__)
    parser.add_argument("before", metavar="A", help="the first session file")
    parser.add_argument("after", metavar="B", help="the second session file")
    parser.add_argument(
        "--key", choices=("path", "route"), default="path", help="pair connections by path (default) or route"
    )
    parser.add_argument("--filter", metavar="EXPR", help="compare only the connections this filter shows")
    ignore_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from asgispy.cli.sessions import CommandError, filtered_connections
    from asgispy.replay.compare import Ignore, compare, difference_lines, label, match

    try:
        before = filtered_connections("diff", args.before, args.filter)
        after = filtered_connections("diff", args.after, args.filter)
    except CommandError:
        return 2
    key = None
    if args.key == "route":
        key = lambda c: (c.type, c.method, c.route or c.path)  # noqa: E731
    ignore = Ignore.from_rules(args.ignore)
    changed = 0
    pairs = match(before, after, key)
    for old, new in pairs:
        if old is None or new is None:
            changed += 1
            print(f"only in {'B' if old is None else 'A'}  {label(new or old)}")  # type: ignore[arg-type]
            continue
        differences = compare(old, new, ignore)
        if differences:
            changed += 1
            print(f"changed  {label(old)}")
            for line in difference_lines(differences):
                print(line)
        else:
            print(f"same     {label(old)}")
    print(f"{len(pairs)} compared: {len(pairs) - changed} same, {changed} differ")
    return 1 if changed else 0
