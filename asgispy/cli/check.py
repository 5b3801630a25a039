"""``asgispy check SESSION``: the ASGI protocol checker over a saved session, for CI.

Prints each violation with its connection and the message at fault, then a count by
severity; exits 1 when any rule at or above ``--fail-on`` (errors, by default) was broken,
so a team can record a session while its tests run and fail the build on a protocol mistake.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parser", "run"]

_SEVERITIES = ("error", "warning", "notice")
_MARKS = {"error": "✖", "warning": "⚠", "notice": "·"}


def add_parser(subparsers: Any, name: str, help: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help,
        description=(
            "Check every connection of SESSION against the ASGI specification's rules "
            "(docs/rules.md). Exits 1 when a rule of the --fail-on severity or worse was broken."
        ),
    )
    parser.add_argument("session", metavar="SESSION", help="a session file (JSON, or --jsonl event log)")
    parser.add_argument(
        "--filter", metavar="EXPR", help="check only the connections this filter shows (as the dashboard's /)"
    )
    parser.add_argument(
        "--fail-on",
        choices=_SEVERITIES,
        default="error",
        help="the least severity that makes the check fail (default: error)",
    )
    parser.add_argument(
        "--show", choices=_SEVERITIES, default="notice", help="the least severity to print (default: notice)"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    from asgispy.cli.sessions import CommandError, filtered_connections
    from asgispy.exports.line import summary_line

    try:
        connections = filtered_connections("check", args.session, args.filter)
    except CommandError:
        return 2
    shown = _SEVERITIES[: _SEVERITIES.index(args.show) + 1]
    failing = _SEVERITIES[: _SEVERITIES.index(args.fail_on) + 1]
    counts = dict.fromkeys(_SEVERITIES, 0)
    for conn in connections:
        printed_connection = False
        for violation in conn.violations:
            counts[violation.severity] += 1
            if violation.severity not in shown:
                continue
            if not printed_connection:
                print(f"{conn.id}  {summary_line(conn)}")
                printed_connection = True
            where = ""
            if violation.event is not None and violation.event < len(conn.events):
                event = conn.events[violation.event]
                where = f" at message {violation.event + 1} ({event.direction} {event.type})"
            print(f"  {_MARKS[violation.severity]} {violation.rule}{where}: {violation.message}")
    total = sum(counts.values())
    words = ", ".join(f"{counts[s]} {s}{'s' if counts[s] != 1 else ''}" for s in _SEVERITIES)
    print(f"{len(connections)} connection{'s' if len(connections) != 1 else ''} checked: {words}")
    if total == 0:
        return 0
    return 1 if any(counts[s] for s in failing) else 0
