"""``asgispy run``, ``asgispy attach`` and ``asgispy open``: the dashboard over three sources.

``run`` serves an app under uvicorn in a child process, pointed at the dashboard's own
collector; ``attach`` is the collector alone, for apps that already use ``Spy(app)``;
``open`` reads a saved session. Nothing heavy is imported until a command runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asgispy.tui.app import Dashboard

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any, name: str, help: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(name, help=help, description=help)
    parser.set_defaults(dashboard=name)
    if name == "open":
        parser.add_argument("file", metavar="FILE", help="a JSON session (from an export, `record` or Spy)")
        group = parser.add_argument_group("resending in-process (r sends the selected request to APP)")
        group.add_argument("--app", metavar="APP", help="the app to send to, as module:attribute")
        group.add_argument("--factory", action="store_true", help="APP is a factory: call it to get the app")
        group.add_argument("--app-dir", default="", metavar="DIR", help="look for APP's module in DIR")
    elif name == "attach":
        add_listen_arguments(
            parser, "where to listen for producers (repeatable; default: the per-user socket)"
        )
    elif name == "run":
        from asgispy.cli import serving

        serving.add_server_arguments(parser)
        add_break_arguments(parser)
        add_listen_arguments(parser, "where the dashboard listens for the app (default: a socket of its own)")
    if name != "open":
        add_event_log_argument(parser)
    add_limit_arguments(parser)
    from asgispy.cli.web import add_web_arguments

    add_web_arguments(parser, short_names=name != "run")
    return parser


def add_break_arguments(parser: argparse.ArgumentParser) -> None:
    """``--break``, ``--break-response`` and ``--break-timeout`` (docs/intercept.md)."""
    from asgispy.intercept.breakpoints import DEFAULT_TIMEOUT

    group = parser.add_argument_group("breakpoints (the dashboard holds matching connections)")
    group.add_argument(
        "--break",
        action="append",
        default=[],
        metavar="EXPR",
        dest="break_requests",
        help="hold requests matching the filter EXPR before the app sees them (repeatable)",
    )
    group.add_argument(
        "--break-response",
        action="append",
        default=[],
        metavar="EXPR",
        dest="break_responses",
        help="hold responses matching EXPR (status: works here) before the client gets them",
    )
    group.add_argument(
        "--break-timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"a held connection resumes unchanged after this long (default: {DEFAULT_TIMEOUT:g})",
    )


def add_event_log_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--jsonl",
        metavar="FILE",
        default=None,
        help=(
            "also write every event to FILE as it arrives (JSON lines), for a coding agent "
            "(`asgispy mcp --session FILE`) or `asgispy open`"
        ),
    )


def add_listen_arguments(parser: Any, help: str, *, address_optional: bool = False) -> None:
    """``--listen ADDRESS`` (repeatable), ``--token`` and ``--allow-remote``, on ``parser`` or a group.

    ``address_optional``: a bare ``--listen`` stands for the default socket (``""`` in the list,
    and the list is None when ``--listen`` is not given at all).
    """
    if address_optional:
        parser.add_argument("--listen", action="append", nargs="?", const="", metavar="ADDRESS", help=help)
    else:
        parser.add_argument("--listen", action="append", metavar="ADDRESS", default=[], help=help)
    parser.add_argument(
        "--token", default=None, help="a secret producers must present (required to listen beyond loopback)"
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a TCP address beyond loopback (anyone who can reach it sees the traffic; needs --token)",
    )


def add_limit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-connections",
        type=int,
        default=50_000,
        metavar="N",
        help="connections kept in memory; the oldest finished ones go first (default: 50000)",
    )


def run(args: argparse.Namespace) -> int:
    kind = args.dashboard
    if args.web:
        if kind == "run":
            problem = _check_served(args)
            if problem:
                return _fail(f"run: {problem}")
        from asgispy.cli import web

        return web.run(args, kind)
    if args.web_host is not None or args.web_port is not None:
        flag = "--web-port" if args.web_port is not None else "--web-host"
        print(f"asgispy {kind}: {flag} is for --web (serving the dashboard to a browser)", file=sys.stderr)
        return 2
    if kind == "open":
        return run_open(args)
    if kind == "attach":
        return run_attach(args)
    return run_served(args)


def _fail(message: str) -> int:
    print(f"asgispy {message}", file=sys.stderr)
    return 1


def run_open(args: argparse.Namespace) -> int:
    from asgispy.codec.sessionfile import SessionFileError

    try:
        app = opened_dashboard(args)
    except (SessionFileError, ValueError) as exc:
        return _fail(f"open: {exc}")
    except Exception as exc:  # --app APP does not import, or its factory raised
        return _fail(f"open: --app {args.app}: {type(exc).__name__}: {exc}")
    return app.run() or 0


def opened_dashboard(args: argparse.Namespace, **options: Any) -> Dashboard:
    """The dashboard of ``asgispy open``: a saved session, offline."""
    from asgispy.store.load import load
    from asgispy.store.store import Store
    from asgispy.tui.app import Dashboard

    session = load(args.file)
    store = Store(max_connections=max(args.max_connections, len(session)))
    store.add_session(session)
    options.setdefault("source", f"file {args.file}")
    target = getattr(args, "app", None)
    if target and "in_process" not in options:
        from asgispy.cli.replay import app_from_string
        from asgispy.replay.inprocess import InProcess

        app = app_from_string(target, args.factory, args.app_dir)
        options["in_process"] = InProcess(app, name=f"{target} (in-process)")
    return Dashboard(store, **options)


def run_attach(args: argparse.Namespace) -> int:
    return run_live_dashboard("attach", lambda: attached_dashboard(args))


def attached_dashboard(args: argparse.Namespace, **options: Any) -> Dashboard:
    """The dashboard of ``asgispy attach``: a collector, waiting for apps that use ``Spy``."""
    from asgispy.store.store import Store
    from asgispy.tui.app import Dashboard
    from asgispy.wire.collector import Collector

    store = Store(max_connections=args.max_connections)
    collector = Collector(store, args.listen, token=args.token, allow_remote=args.allow_remote)
    options.setdefault("source", "attach")
    options.setdefault("event_log", getattr(args, "jsonl", None))
    return Dashboard(store, live=collector, **options)


def run_served(args: argparse.Namespace) -> int:
    problem = _check_served(args)
    if problem:
        return _fail(f"run: {problem}")
    return run_live_dashboard("run", lambda: served_dashboard(args))


def _check_served(args: argparse.Namespace) -> str | None:
    """What is wrong with ``run``'s APP, addons, rules, --inside and breakpoints; None when fine."""
    from asgispy.cli import serving

    problem = serving.check_app_string(args.app)
    problem = problem or serving.check_interception(args) or serving.check_inside(args)
    args.intercept = True  # a development server: the dashboard may hold its connections
    return problem or _check_breakpoints(args)


def _check_breakpoints(args: argparse.Namespace) -> str | None:
    """Each breakpoint parses, and its saved filters (@name) are written out for the app, which
    matches them in its own process."""
    from asgispy.filter.grammar import FilterError, parse
    from asgispy.filter.saved import spell_out

    for flag, expressions in (("--break", args.break_requests), ("--break-response", args.break_responses)):
        for i, expression in enumerate(expressions):
            try:
                expressions[i] = spell_out(expression)
                parse(expressions[i])
            except FilterError as exc:
                return f"{flag} {expression!r}: {exc}"
    return None


def run_live_dashboard(command: str, build: Callable[[], Dashboard]) -> int:
    """Run a dashboard fed by a collector; a collector that cannot listen is a clear error."""
    from asgispy.wire.address import AddressError
    from asgispy.wire.collector import CollectorError

    try:
        app = build()
    except (CollectorError, AddressError) as exc:
        return _fail(f"{command}: {exc}")
    except OSError as exc:  # --jsonl FILE cannot be written
        return _fail(f"{command}: {exc}")
    code = app.run() or 0
    if app.live_error:
        return _fail(f"{command}: {app.live_error}")
    return int(code)


def served_dashboard(args: argparse.Namespace, **options: Any) -> Dashboard:
    """The dashboard of ``asgispy run``: its collector, and APP under uvicorn as its child."""
    from asgispy.cli import serving
    from asgispy.store.store import Store
    from asgispy.tui.app import Dashboard
    from asgispy.tui.child import ChildProcess
    from asgispy.wire.collector import Collector

    store = Store(max_connections=args.max_connections)
    collector = Collector(
        store, args.listen or [private_address()], token=args.token, allow_remote=args.allow_remote
    )

    def child(addresses: Sequence[str]) -> ChildProcess:
        env = serving.server_environment(args, addresses[0], token=args.token)
        return ChildProcess(serving.server_command(args), env=env)

    options.setdefault("source", args.app)
    options.setdefault("event_log", getattr(args, "jsonl", None))
    breakpoints = [(e, "request") for e in getattr(args, "break_requests", ())]
    breakpoints += [(e, "response") for e in getattr(args, "break_responses", ())]
    options.setdefault("breakpoints", breakpoints)
    options.setdefault("break_timeout", getattr(args, "break_timeout", None))
    return Dashboard(store, live=collector, child=child, **options)


def private_address() -> str:
    """A socket of this dashboard's own, so that two ``asgispy run`` never mix their apps."""
    import os

    from asgispy.wire.address import runtime_directory

    return f"unix:{runtime_directory() / f'run-{os.getpid()}.sock'}"
