"""``asgispy mcp``: a Model Context Protocol server over stdio, for coding agents.

It reads a saved session (``--session FILE``) or listens for apps that use ``Spy(app)``
(``--listen``, the per-user socket by default, as ``asgispy attach`` does), and answers an
agent's tool calls about what the app did (docs/agents.md). stdout carries the protocol,
so everything else (logs, errors) goes to stderr. The SDK is the optional ``asgispy[mcp]``
extra, imported only once this command runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from asgispy.cli.dashboard import add_limit_arguments, add_listen_arguments

__all__ = ["add_parser", "run"]

INSTALL = "pip install 'asgispy[mcp]'"


def add_parser(subparsers: Any, name: str, help: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help,
        description="A Model Context Protocol server over stdio, for coding agents: what an ASGI app "
        "received and sent, from a saved session or live from apps using Spy(app). Register it with "
        "an agent, e.g. `claude mcp add asgispy -- asgispy mcp` (docs/agents.md). Needs the extra: "
        + INSTALL,
    )
    parser.add_argument(
        "--session",
        metavar="FILE",
        default=None,
        help=(
            "serve a saved session (JSON or --jsonl), followed as it changes, instead of listening; "
            "or a folder of them (pytest --asgispy's .asgispy/)"
        ),
    )
    add_listen_arguments(
        parser, "where to listen for apps using Spy (repeatable; default: the per-user socket)"
    )
    add_limit_arguments(parser)
    return parser


def _fail(message: str, code: int = 2) -> int:
    print(f"asgispy mcp: {message}", file=sys.stderr)
    return code


def _sdk_problem() -> str | None:
    """Why the MCP SDK cannot be used, or None when it can."""
    try:
        import mcp
    except ImportError as exc:
        if (exc.name or "mcp") == "mcp":
            return f"the MCP server needs the MCP SDK, an optional extra: {INSTALL}"
        return f"the MCP SDK cannot be imported ({exc}): {INSTALL}"
    try:
        import mcp.server.mcpserver  # noqa: F401
    except ImportError as exc:
        if (exc.name or "").startswith("mcp.server"):
            return f"the MCP server needs version 2 of the MCP SDK ({exc}): pip install -U 'asgispy[mcp]'"
        return f"the MCP SDK cannot be imported ({exc}): {INSTALL}"
    return None


def run(args: argparse.Namespace) -> int:
    if args.session and (args.listen or args.token or args.allow_remote):
        return _fail("--session reads files; --listen, --token and --allow-remote are for live apps")
    problem = _sdk_problem()
    if problem:
        return _fail(problem)
    _log_to_stderr()
    import asyncio

    try:
        return asyncio.run(_main(args))
    except KeyboardInterrupt:
        return 130


def _log_to_stderr() -> None:
    """Logs to stderr only: stdout is the protocol's. asgispy says what it listens on; the SDK
    only what goes wrong."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("asgispy").setLevel(logging.INFO)


async def _main(args: argparse.Namespace) -> int:
    import asyncio
    import contextlib
    import os
    import signal

    from asgispy.agents.server import serve_stdio
    from asgispy.agents.sources import FileSource, FolderSource, LiveSource
    from asgispy.agents.tools import Inspector
    from asgispy.agents.watch import Watch
    from asgispy.store.store import Store
    from asgispy.wire.address import AddressError
    from asgispy.wire.collector import Collector, CollectorError

    watch = Watch()
    live: LiveSource | None = None
    source: FileSource | FolderSource | LiveSource
    if args.session and os.path.isdir(args.session):
        source = FolderSource(args.session, watch, args.max_connections)
        source.refresh()
    elif args.session:
        source = FileSource(args.session, watch, args.max_connections)
        source.refresh()
        if source.problem and source.path.exists():
            return _fail(source.problem.removesuffix("; showing what was read before"))
        if source.problem:
            logging.getLogger("asgispy.mcp").warning("%s", source.problem)
    else:
        store = Store(max_connections=args.max_connections)
        watch.follow(store)
        try:
            collector = Collector(store, args.listen, token=args.token, allow_remote=args.allow_remote)
        except (CollectorError, AddressError) as exc:
            return _fail(str(exc))
        source = live = LiveSource(collector)
        await live.start()
        if not live.problem:
            logging.getLogger("asgispy.mcp").info(
                "listening on %s", ", ".join(str(a) for a in collector.addresses)
            )

    loop = asyncio.get_running_loop()
    ending: list[asyncio.Task[None]] = []

    async def end() -> None:
        if live is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(live.stop(), 2.0)
        # The SDK reads stdin in a thread that no cancellation reaches: leave without it.
        os._exit(0)

    def terminate() -> None:
        if not ending:
            ending.append(loop.create_task(end()))

    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, terminate)
    try:
        await serve_stdio(Inspector(source, watch))
    finally:
        if live is not None:
            await live.stop()
    return 0
