"""``asgispy``: the command line. Each subcommand lives in its own module, imported on use."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from asgispy.version import __version__

#: subcommand -> (module defining ``add_parser(subparsers)`` and ``run(args) -> int``, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("asgispy.cli.demo", "serve a built-in demo app with traffic, and show it live"),
    "run": ("asgispy.cli.dashboard", "serve APP under uvicorn and show its traffic live"),
    "attach": ("asgispy.cli.dashboard", "show the traffic of apps that already use Spy(app)"),
    "open": ("asgispy.cli.dashboard", "show a saved session file"),
    "record": ("asgispy.cli.record", "serve APP under uvicorn and record its traffic to a file"),
    "import": ("asgispy.cli.importing", "make a session of a HAR file saved by a browser or a proxy"),
    "export": ("asgispy.cli.export", "write a session as JSON, JSON lines, HAR or curl commands"),
    "replay": (
        "asgispy.cli.replay",
        "send a session's requests to APP again, in-process, and say what changed",
    ),
    "diff": ("asgispy.cli.diff", "compare two session files connection by connection"),
    "test": ("asgispy.cli.testgen", "write a session's traffic as pytest tests of APP"),
    "stats": ("asgispy.cli.stats", "requests, errors and latency per route; or two sessions side by side"),
    "check": ("asgispy.cli.check", "check a saved session against the ASGI spec's rules (exit 1 on errors)"),
    "filters": ("asgispy.cli.filters", "list the saved filters (@name in --filter) and where each is read"),
    "mcp": ("asgispy.cli.mcp", "serve recorded traffic to coding agents over MCP (needs asgispy[mcp])"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asgispy",
        description="See every ASGI scope and message your app receives and sends.",
    )
    parser.add_argument("--version", action="version", version=f"asgispy {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help) in COMMANDS.items():
        importlib.import_module(module).add_parser(subparsers, name, help)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        code = int(module.run(args) or 0)
        sys.stdout.flush()
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`asgispy stats S | head`): say nothing more, as Unix tools do,
        # and point stdout at nothing so that the interpreter's own flush at exit stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
