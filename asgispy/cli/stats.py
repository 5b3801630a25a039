"""``asgispy stats SESSION``: per route, how many requests, how many failed, and how long they took.

With two session files (``asgispy stats BEFORE.json AFTER.json``) the two tables are shown side
by side, with the change of each percentile, to answer "did my change make /orders slower?".
Durations and times to first byte are nearest-rank percentiles over HTTP connections; errors are
5xx statuses and app exceptions; lifespan is left out (see docs/stats.md).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any, name: str, help: str) -> argparse.ArgumentParser:
    from asgispy.analysis.stats import GROUPINGS

    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("session", metavar="SESSION", help="a session file (JSON, or a --jsonl event log)")
    parser.add_argument(
        "after", metavar="AFTER", nargs="?", help="a second session file: compare SESSION (before) with it"
    )
    parser.add_argument("--filter", metavar="EXPR", help="count only the connections this filter shows")
    parser.add_argument(
        "--by",
        choices=GROUPINGS,
        default="route",
        help="group by the route template (default; the path when none), path, endpoint or status",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per group, times in seconds")
    return parser


def run(args: argparse.Namespace) -> int:
    from asgispy.analysis.stats import compare, table, total
    from asgispy.cli.sessions import CommandError, filtered_connections
    from asgispy.exports.stats_text import change_lines, table_lines

    try:
        before = filtered_connections("stats", args.session, args.filter)
        after = filtered_connections("stats", args.after, args.filter) if args.after else None
    except CommandError:
        return 2
    if after is None:
        groups = table(before, args.by)
        if args.json:
            _print_json([g.document() for g in groups])
        elif not groups:
            print("no requests to count", file=sys.stderr)
        else:
            print("\n".join(table_lines(groups, args.by, total(before))))
        return 0
    changes = compare(table(before, args.by), table(after, args.by))
    if args.json:
        _print_json([c.document() for c in changes])
    elif not changes:
        print("no requests to count in either session", file=sys.stderr)
    else:
        print("\n".join(change_lines(changes, args.by)))
    return 0


def _print_json(value: Any) -> None:
    import orjson

    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")
