"""``asgispy replay SESSION APP``: send the recorded requests again, in-process, and say what changed.

With ``--stub-calls`` the app's outgoing httpx calls are answered from the recording
(:mod:`asgispy.replay.stubs`), so an upstream that changed or is gone changes nothing.

One line per connection (``same`` or ``changed``), then the differences of each changed one;
exit status 1 when anything changed, so a fix can be checked against the traffic that showed
the bug.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

__all__ = ["add_parser", "app_from_string", "ignore_arguments", "run"]

#: ``ASGISPY_SECRET_AUTHORIZATION=...`` supplies a redacted ``authorization`` header's value.
ENV_SECRET = "ASGISPY_SECRET_"


def ignore_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="RULE",
        help="a response header or a JSON path in the body not to compare (body.items[*].created_at);"
        " repeatable. date, server and request-id headers are ignored already",
    )


def add_parser(subparsers: Any, name: str, help: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(name, help=help, description=__doc__)
    parser.add_argument("session", metavar="SESSION", help="a session file")
    parser.add_argument(
        "app", metavar="APP", help="the ASGI app as an import string, like uvicorn's: main:app"
    )
    parser.add_argument("--factory", action="store_true", help="APP is a factory: call it to get the app")
    parser.add_argument("--app-dir", default="", metavar="DIR", help="look for APP's module in DIR")
    parser.add_argument("--filter", metavar="EXPR", help="replay only the connections this filter shows")
    parser.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=f"the value of a header redacted when recorded (or ${ENV_SECRET}NAME); repeatable",
    )
    parser.add_argument(
        "--stub-calls",
        action="store_true",
        help="answer the app's outgoing httpx calls from the recording instead of the network"
        " (a call with no recorded answer fails)",
    )
    ignore_arguments(parser)
    return parser


def app_from_string(target: str, factory: bool, app_dir: str) -> Any:
    """The app ``target`` names, imported as uvicorn would (``module:attribute``)."""
    from uvicorn.importer import import_from_string

    sys.path.insert(0, os.path.abspath(app_dir or "."))
    app = import_from_string(target)
    return app() if factory else app


def run(args: argparse.Namespace) -> int:
    import asyncio

    from asgispy.cli.sessions import CommandError, filtered_connections
    from asgispy.replay.compare import Ignore, compare, difference_lines, label
    from asgispy.replay.runner import replay

    try:
        chosen = filtered_connections("replay", args.session, args.filter)
    except CommandError:
        return 2
    connections = [c for c in chosen if c.type in ("http", "websocket")]
    secrets = {
        k[len(ENV_SECRET) :].replace("_", "-").lower(): v
        for k, v in os.environ.items()
        if k.startswith(ENV_SECRET)
    }
    for item in args.header:
        name, sep, value = item.partition("=")
        if not sep or not name:
            print(f"asgispy replay: --header {item!r}: expected NAME=VALUE", file=sys.stderr)
            return 2
        secrets[name.strip().lower()] = value
    try:
        app = app_from_string(args.app, args.factory, args.app_dir)
    except Exception as exc:
        print(f"asgispy replay: cannot load {args.app}: {exc}", file=sys.stderr)
        return 2
    ignore = Ignore.from_rules(args.ignore)
    results = asyncio.run(replay(app, connections, secrets, stub_calls=args.stub_calls))
    changed = unsent = 0
    for result in results:
        name = label(result.recorded)
        missing = result.missing_secrets
        differences = compare(result.recorded, result.now, ignore) if result.now is not None else None
        refused = result.now is not None and result.now.status in (401, 403)
        if missing and differences and refused and result.recorded.status not in (401, 403):
            # Sent without a header that was redacted, and refused for it: the header is needed.
            unsent += 1
            needed = " ".join(f"--header {m}=VALUE" for m in missing)
            print(f"skipped  {name}  (needs {', '.join(missing)}, redacted when recorded: give {needed})")
            continue
        if result.unrecorded:
            # Stubbed, and the app made a call the recording never saw: its answer means nothing.
            changed += 1
            calls = ", ".join(result.unrecorded)
            print(f"failed   {name}  (no recorded answer for {calls}: not sent, --stub-calls)")
            if differences:
                for line in difference_lines(differences):
                    print(line)
            continue
        if result.now is None or differences is None:
            changed += 1
            print(f"failed   {name}  ({result.error or 'the app sent nothing'})")
            continue
        if differences:
            changed += 1
            without = f"  (sent without {', '.join(missing)}, redacted when recorded)" if missing else ""
            print(f"changed  {name}{without}")
            for line in difference_lines(differences):
                print(line)
        else:
            without = f"  (sent without {', '.join(missing)}, redacted when recorded)" if missing else ""
            print(f"same     {name}{without}")
    same = len(results) - changed - unsent
    print(f"{len(results)} replayed: {same} same, {changed} changed, {unsent} skipped")
    return 1 if changed else 0
