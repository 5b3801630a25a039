"""``asgispy test SESSION --app APP -o tests/test_recorded.py``: recorded traffic as pytest tests.

One test per recorded connection, named from its method and path, that sends the request to
APP through its ASGI interface and asserts what was recorded (see asgispy/replay/testgen.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any, name: str, help: str) -> argparse.ArgumentParser:
    from asgispy.cli.replay import ignore_arguments

    parser: argparse.ArgumentParser = subparsers.add_parser(name, help=help, description=__doc__)
    parser.add_argument("session", metavar="SESSION", help="a session file")
    parser.add_argument(
        "--app", required=True, metavar="APP", help="the app the tests drive: module:attribute"
    )
    parser.add_argument("--factory", action="store_true", help="APP is a factory: call it to get the app")
    parser.add_argument("-o", "--output", required=True, metavar="FILE", help="the test module to write")
    parser.add_argument("--filter", metavar="EXPR", help="only the connections this filter shows")
    ignore_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from asgispy.cli.sessions import CommandError, filtered_connections
    from asgispy.replay.testgen import write_tests

    try:
        connections = filtered_connections("test", args.session, args.filter)
    except CommandError:
        return 2
    chosen = [c for c in connections if c.type in ("http", "websocket")]
    try:
        path = write_tests(
            chosen, args.app, Path(args.output), factory=args.factory, ignore=args.ignore, source=args.session
        )
    except ValueError as exc:
        print(f"asgispy test: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(chosen)} test{'s' if len(chosen) != 1 else ''} to {path}")
    return 0
