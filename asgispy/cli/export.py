"""``asgispy export SESSION --format json|jsonl|har|curl [--filter EXPR] [-o OUT]``.

Every export from the command line: a JSON session (the filtered part of one), the JSON-lines
event log ``asgispy record --jsonl`` writes (both load back with ``asgispy.load``), HAR 1.2 for
browser tools, or one curl command per HTTP request. Text formats go to stdout without ``-o``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]

FORMATS = ("json", "jsonl", "har", "curl")


def add_parser(subparsers: Any, name: str, help: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(name, help=help, description=__doc__)
    parser.add_argument("session", metavar="SESSION", help="a session file (JSON, or --jsonl event log)")
    parser.add_argument(
        "--format", choices=FORMATS, help="what to write (default: by OUT's extension, else json)"
    )
    parser.add_argument("--filter", metavar="EXPR", help="export only the connections this filter shows")
    parser.add_argument("-o", "--output", metavar="OUT", help="where to write (default: stdout)")
    return parser


def run(args: argparse.Namespace) -> int:
    import orjson

    from asgispy.capture.sessionfile import write_bytes_atomically
    from asgispy.cli.sessions import CommandError, filtered_session
    from asgispy.store.load import EVENT_LOG_FORMAT, EVENT_LOG_VERSION

    fmt = args.format or _by_extension(args.output)
    try:
        session = filtered_session("export", args.session, args.filter)
    except CommandError:
        return 2
    connections = session.connections
    if fmt == "json":
        data = orjson.dumps(session.document(), option=orjson.OPT_INDENT_2) + b"\n"
    elif fmt == "jsonl":
        lines = [{"format": EVENT_LOG_FORMAT, "version": EVENT_LOG_VERSION, "created": time.time()}]
        lines += [
            {"type": "producer", "tag": tag, **info.document()} for tag, info in session.producers.items()
        ]
        lines += [{"type": "open", "connection": conn.document()} for conn in connections]
        data = b"".join(orjson.dumps(line) + b"\n" for line in lines)
    elif fmt == "har":
        from asgispy.exports.har import to_har

        data = orjson.dumps(
            to_har(connections, comment=f"exported from {args.session}"), option=orjson.OPT_INDENT_2
        )
    else:
        from asgispy.exports.curl import to_curl

        commands = [to_curl(conn) for conn in connections if conn.type == "http"]
        data = ("\n\n".join(commands) + "\n").encode()
    if args.output:
        path = write_bytes_atomically(Path(args.output), data)
        print(
            f"wrote {len(connections)} connection{'s' if len(connections) != 1 else ''} as {fmt} to {path}",
            file=sys.stderr,
        )
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0


def _by_extension(output: str | None) -> str:
    suffix = Path(output).suffix.lower() if output else ""
    return {".har": "har", ".jsonl": "jsonl", ".sh": "curl", ".curl": "curl"}.get(suffix, "json")
