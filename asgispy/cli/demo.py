"""``asgispy demo``: a built-in app and its traffic, to see asgispy at work with no set-up.

Plain ``asgispy demo`` is ``asgispy run`` on the demo app (uvicorn in a child process,
streaming to the dashboard) plus the demo's traffic generator, driven from the dashboard
until you quit. ``--headless`` prints one line per connection instead of a screen.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asgispy.tui.app import Dashboard

DEMO_APP = "asgispy.demo.app:app"


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
        default=None,
        metavar="N",
        help="rounds of traffic over every demo route (0: until you quit; default: 1 headless, 0 on screen)",
    )
    parser.add_argument("--port", type=int, default=None, help="port on 127.0.0.1 (default: any free one)")
    parser.add_argument(
        "-o", "--output", metavar="FILE", help="write the recorded session to FILE (headless)"
    )
    parser.add_argument(
        "--delay", type=float, default=0.3, metavar="SECONDS", help="mean pause between visits (default: 0.3)"
    )
    parser.add_argument(
        "--layers", action="store_true", help="record every layer of the demo's middleware stack too"
    )
    from asgispy.cli.dashboard import add_event_log_argument

    add_event_log_argument(parser)
    from asgispy.cli.web import add_web_arguments

    add_web_arguments(parser, short_names=False)
    return parser


def _rounds(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("rounds must be 0 (until Ctrl-C) or more")
    return value


def run(args: argparse.Namespace) -> int:
    if args.web:
        if args.headless or args.output or args.port is not None:
            print(
                "asgispy demo: --web serves a dashboard per browser tab, each with a demo app of its own "
                "on a free port: --headless, -o and --port do not go with it",
                file=sys.stderr,
            )
            return 2
        from asgispy.cli import web

        return web.run(args, "demo")
    if args.web_host is not None or args.web_port is not None:
        print("asgispy demo: --web-host and --web-port are for --web", file=sys.stderr)
        return 2
    if args.headless:
        from asgispy.demo.headless import run_headless

        if args.jsonl:
            print(
                "asgispy demo: --jsonl is for the dashboard; headless, -o FILE writes the session",
                file=sys.stderr,
            )
            return 2

        rounds = 1 if args.rounds is None else args.rounds
        return run_headless(
            port=args.port, rounds=rounds, output=args.output, delay=args.delay, layers=args.layers
        )
    from asgispy.wire.address import AddressError
    from asgispy.wire.collector import CollectorError

    try:
        app = demo_dashboard(
            args.port,
            0 if args.rounds is None else args.rounds,
            args.delay,
            layers=args.layers,
            event_log=args.jsonl,
        )
    except (CollectorError, AddressError, OSError) as exc:
        print(f"asgispy demo: {exc}", file=sys.stderr)
        return 1
    code = app.run() or 0
    if app.live_error:
        print(f"asgispy demo: {app.live_error}", file=sys.stderr)
        return 1
    return code


def demo_dashboard(
    port: int | None = None, rounds: int = 0, delay: float = 0.3, layers: bool = False, **options: Any
) -> Dashboard:
    """The dashboard on the demo app, served on 127.0.0.1:``port``, with its traffic running."""
    from asgispy.cli import dashboard, serving

    port = port or _free_port()
    parser = argparse.ArgumentParser()
    serving.add_server_arguments(parser)
    dashboard.add_listen_arguments(parser, "")
    dashboard.add_limit_arguments(parser)
    args = parser.parse_args(
        [DEMO_APP, "--host", "127.0.0.1", "--port", str(port), "--lifespan", "on", "--log-level", "info"]
        + ["--inside", "http,logging"]  # what the demo does inside a request: /api/quote
        + (["--layers"] if layers else [])
    )
    args.intercept = True  # as under asgispy run: b, h and r work on the demo app too
    url = f"http://127.0.0.1:{port}"

    async def traffic(app: Dashboard) -> None:
        import asyncio

        from asgispy.demo.traffic import drive

        app.say(f"demo: serving the demo app on {url}; traffic starts when it is up")
        while not app.status.flags.child.startswith("serving"):
            if "exited" in app.status.flags.child:
                return
            await asyncio.sleep(0.1)
        stats = await drive(
            url, rounds=rounds or None, delay=delay, log=lambda text: app.say(f"demo: {text}")
        )
        app.say(f"demo traffic done: {stats.summary()}")

    options.setdefault("source", "demo")
    return dashboard.served_dashboard(args, background=[traffic], **options)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
