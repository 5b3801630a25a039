"""``asgispy import FILE.har [-o SESSION.json]``: traffic a browser or a proxy saved, as a session.

Chrome's and Firefox's DevTools, mitmproxy and HTTP Toolkit save traffic as HAR; imported,
it opens in the dashboard and goes through ``replay``, ``test`` and ``check`` like a
recording. What a HAR does not hold (the app's real messages and their times, the client's
address, the route) is said in each connection's notes. Secret headers are masked unless
``--keep-secrets``. An entry that cannot be imported is skipped with its reason; a file that is
not a HAR is refused (exit status 2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any, name: str, help: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(name, help=help, description=__doc__)
    parser.add_argument("har", metavar="FILE", help="a HAR file (.har, or mitmproxy's .zhar)")
    parser.add_argument(
        "-o", "--output", metavar="SESSION", help="where to write the session (default: FILE with .json)"
    )
    parser.add_argument(
        "--keep-secrets",
        action="store_true",
        help="keep Authorization, Cookie and other secret headers as the HAR has them (masked by default)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="say nothing of the entries skipped")
    return parser


def run(args: argparse.Namespace) -> int:
    from asgispy.codec.sessionfile import write_session
    from asgispy.imports.har import HarError, read_har_session

    source = Path(args.har)
    output = Path(args.output) if args.output else source.with_suffix(".json")
    if output.resolve() == source.resolve():
        print(f"asgispy import: {output} is the HAR itself: give another -o", file=sys.stderr)
        return 2
    try:
        imported = read_har_session(source, keep_secrets=args.keep_secrets)
    except HarError as exc:
        print(f"asgispy import: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        for skip in imported.skipped:
            print(
                f"asgispy import: skipped entry {skip.number} ({skip.what}): {skip.reason}", file=sys.stderr
            )
    if imported.entries and not imported.connections:
        print(
            f"asgispy import: none of the {imported.entries} entries of {source} could be imported",
            file=sys.stderr,
        )
        return 2
    try:
        write_session(output, imported.document)
    except OSError as exc:
        print(f"asgispy import: cannot write {output}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    count = imported.connections
    skipped = f", {len(imported.skipped)} skipped" if imported.skipped else ""
    print(
        f"imported {count} connection{'s' if count != 1 else ''} from {source}{skipped}: wrote {output}",
        file=sys.stderr,
    )
    return 0
