"""``asgispy demo``: a built-in app and its traffic, to see asgispy at work with no set-up."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(subparsers: Any, name: str, help: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(name, help=help, description=help)
    parser.add_argument(
        "--headless",
        action="store_true",
        help="no dashboard: print one line per connection as it finishes",
    )
    parser.add_argument(
        "--rounds",
        type=_rounds,
        default=1,
        metavar="N",
        help="rounds of traffic over every demo route (0: until Ctrl-C; default: 1)",
    )
    parser.add_argument("--port", type=int, default=None, help="port on 127.0.0.1 (default: any free one)")
    parser.add_argument("-o", "--output", metavar="FILE", help="write the recorded session to FILE")
    return parser


def _rounds(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("rounds must be 0 (until Ctrl-C) or more")
    return value


def run(args: argparse.Namespace) -> int:
    if not args.headless:
        print("asgispy demo: the dashboard is not available yet; use --headless", file=sys.stderr)
        return 1
    from asgispy.demo.headless import run_headless

    return run_headless(port=args.port, rounds=args.rounds, output=args.output)
