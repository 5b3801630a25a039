"""Serving APP under uvicorn, wrapped in ``Spy``, for ``asgispy record`` and ``asgispy run``.

The app is not imported here: the command line asks uvicorn (in a child process) to serve
the factory :func:`spied_app`, which imports APP in each worker from ``$ASGISPY_TARGET`` and
wraps it. So ``--workers`` and ``--reload`` work exactly as with plain uvicorn (every worker,
every reload, imports the app afresh and streams to the collector on its own), and import
errors read as uvicorn's do.

``python -m asgispy.cli.serving UVICORN-ARGS`` is that child: uvicorn's own command line,
plus a watch on the parent, so that a viewer killed without a chance to clean up does not
leave the app serving on its port.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ENV_FACTORY",
    "ENV_INTERFACE",
    "ENV_TARGET",
    "add_server_arguments",
    "check_app_string",
    "check_inside",
    "check_interception",
    "server_command",
    "server_environment",
    "spied_app",
]

ENV_TARGET = "ASGISPY_TARGET"
ENV_FACTORY = "ASGISPY_TARGET_FACTORY"
ENV_INTERFACE = "ASGISPY_TARGET_INTERFACE"
ENV_LAYERS = "ASGISPY_LAYERS"
ENV_ADDONS = "ASGISPY_ADDONS"  # addon files, os.pathsep between them
ENV_RULES = "ASGISPY_RULES"
ENV_INTERCEPT = "ASGISPY_INTERCEPT"  # set by `asgispy run`: connections may be held, sends are timed
ENV_INSIDE = "ASGISPY_INSIDE"  # what the app does inside each request: http,logging,sql
ENV_INSIDE_LEVEL = "ASGISPY_INSIDE_LEVEL"
ENV_INSIDE_SQL_PARAMS = "ASGISPY_INSIDE_SQL_PARAMS"
FACTORY = "asgispy.cli.serving:spied_app"
#: uvicorn's exit status for an app that cannot be loaded.
STARTUP_FAILURE = 3


@dataclass(frozen=True)
class _Option:
    flag: str
    kind: Any = str  # str, int, float, "flag", "toggle" (--x/--no-x), "append"
    help: str = ""
    choices: tuple[str, ...] | None = None
    metavar: str | None = None

    @property
    def dest(self) -> str:
        return "uvicorn_" + self.flag.lstrip("-").replace("-", "_")


#: The uvicorn options passed through to uvicorn as they are.
OPTIONS: tuple[_Option, ...] = (
    _Option("--host", help="bind to this host (uvicorn's default: 127.0.0.1)"),
    _Option("--port", int, "bind to this port; 0 picks a free one (default: 8000)"),
    _Option("--uds", help="bind to this Unix domain socket instead"),
    _Option("--workers", int, "number of worker processes (each is recorded)"),
    _Option("--reload", "flag", "restart the app when its files change"),
    _Option("--reload-dir", "append", "watch this directory for --reload (repeatable)", metavar="DIR"),
    _Option("--reload-include", "append", "glob of files to watch for --reload", metavar="GLOB"),
    _Option("--reload-exclude", "append", "glob of files not to watch for --reload", metavar="GLOB"),
    _Option("--reload-delay", float, "seconds between checks for changes", metavar="SECONDS"),
    _Option("--env-file", help="load environment variables from this file", metavar="PATH"),
    _Option("--log-config", help="uvicorn's logging configuration file", metavar="PATH"),
    _Option(
        "--log-level",
        help="uvicorn's log level",
        choices=("critical", "error", "warning", "info", "debug", "trace"),
    ),
    _Option("--access-log", "toggle", "uvicorn's own access log (off: asgispy prints a line instead)"),
    _Option("--use-colors", "toggle", "colours in uvicorn's log"),
    _Option("--root-path", help="the ASGI root_path, for an app mounted below a URL path"),
    _Option("--proxy-headers", "toggle", "trust X-Forwarded-Proto and X-Forwarded-For"),
    _Option("--forwarded-allow-ips", help="addresses trusted to send proxy headers", metavar="IPS"),
    _Option("--server-header", "toggle", "send uvicorn's Server header"),
    _Option("--date-header", "toggle", "send uvicorn's Date header"),
    _Option("--header", "append", "a default response header, NAME:VALUE (repeatable)", metavar="HEADER"),
    _Option("--lifespan", help="lifespan handling", choices=("auto", "on", "off")),
    _Option("--http", help="HTTP implementation: auto, h11, httptools", metavar="IMPL"),
    _Option("--ws", help="WebSocket implementation: auto, none, websockets, wsproto", metavar="IMPL"),
    _Option("--ws-max-size", int, "largest WebSocket message in bytes", metavar="BYTES"),
    _Option("--ws-ping-interval", float, "WebSocket ping interval", metavar="SECONDS"),
    _Option("--ws-ping-timeout", float, "WebSocket ping timeout", metavar="SECONDS"),
    _Option("--loop", help="event loop: auto, asyncio, uvloop, none", metavar="LOOP"),
    _Option("--limit-concurrency", int, "answer 503 beyond this many connections or tasks", metavar="N"),
    _Option("--limit-max-requests", int, "restart a worker after this many requests", metavar="N"),
    _Option("--backlog", int, "how many connections may wait to be accepted", metavar="N"),
    _Option("--timeout-keep-alive", int, "close idle keep-alive connections after this", metavar="SECONDS"),
    _Option(
        "--timeout-graceful-shutdown", int, "longest wait for connections at shutdown", metavar="SECONDS"
    ),
    _Option("--ssl-keyfile", help="TLS key file", metavar="PATH"),
    _Option("--ssl-certfile", help="TLS certificate file", metavar="PATH"),
    _Option("--ssl-keyfile-password", help="password of the TLS key file", metavar="PASSWORD"),
    _Option("--h11-max-incomplete-event-size", int, "h11's buffer limit", metavar="BYTES"),
)


def add_server_arguments(parser: argparse.ArgumentParser, *, optional: bool = False) -> None:
    """Add APP, ``--factory``, ``--app-dir``, ``--interface`` and the uvicorn options to ``parser``.

    ``optional`` makes APP optional, for a command that can also collect without serving.
    """
    parser.add_argument(
        "app",
        metavar="APP",
        nargs="?" if optional else None,
        help="the ASGI app as an import string, like uvicorn's: main:app",
    )
    group = parser.add_argument_group("serving APP (uvicorn's options, passed on to it)")
    group.add_argument("--factory", action="store_true", help="APP is a factory: call it to get the app")
    group.add_argument(
        "--app-dir", default="", metavar="DIR", help="look for APP's module in DIR (default: the current one)"
    )
    group.add_argument(
        "--interface", choices=("auto", "asgi3", "asgi2", "wsgi"), default="auto", help="APP's interface"
    )
    parser.add_argument(
        "--layers",
        action="store_true",
        help="record every layer of APP's middleware stack too: see what each middleware did",
    )
    changing = parser.add_argument_group("changing traffic (docs/intercept.md)")
    changing.add_argument(
        "-s",
        "--addon",
        action="append",
        default=[],
        metavar="FILE",
        dest="addons",
        help="a Python file of hooks that change requests, responses and WebSocket messages (repeatable)",
    )
    changing.add_argument(
        "--rules", metavar="FILE", help="a TOML file of rules: mocks, delays, throttles, faults, drops"
    )
    inside = parser.add_argument_group("what the app does inside each request (docs/inside.md)")
    inside.add_argument(
        "--inside",
        nargs="?",
        const="all",
        metavar="KINDS",
        help="record outgoing HTTP calls, log records and SQL on each connection (or some: http,sql)",
    )
    inside.add_argument(
        "--inside-level", default="INFO", metavar="LEVEL", help="the lowest log level recorded (default INFO)"
    )
    inside.add_argument(
        "--inside-sql-params",
        action="store_true",
        help="record SQL parameters too (user data: off by default)",
    )
    for option in OPTIONS:
        kwargs: dict[str, Any] = {"dest": option.dest, "help": option.help}
        if option.kind == "flag":
            group.add_argument(option.flag, action="store_true", **kwargs)
        elif option.kind == "toggle":
            group.add_argument(option.flag, action=argparse.BooleanOptionalAction, default=None, **kwargs)
        elif option.kind == "append":
            group.add_argument(option.flag, action="append", metavar=option.metavar, **kwargs)
        else:
            metavar = None if option.choices else option.metavar or option.flag[2:].upper().replace("-", "_")
            group.add_argument(
                option.flag, type=option.kind, choices=option.choices, metavar=metavar, **kwargs
            )


def check_app_string(app: str) -> str | None:
    """uvicorn's complaint about an import string's shape, or None when it is well formed."""
    module, _, attrs = app.partition(":")
    if not module or not attrs:
        return f'Error loading ASGI app. Import string "{app}" must be in format "<module>:<attribute>".'
    return None


def check_inside(args: argparse.Namespace) -> str | None:
    """What is wrong with ``--inside`` and ``--inside-level``, found before a server starts."""
    import logging

    from asgispy.inside import parse_kinds

    if getattr(args, "inside", None) is None:
        return None
    try:
        parse_kinds(args.inside)
    except ValueError as exc:
        return f"--inside: {exc}"
    if not isinstance(logging.getLevelName(str(args.inside_level).upper()), int):
        return f"--inside-level: {args.inside_level!r} is not a logging level (DEBUG, INFO, WARNING, ERROR)"
    return None


def check_interception(args: argparse.Namespace) -> str | None:
    """What is wrong with ``--addon`` and ``--rules`` files, found before a server starts."""
    from asgispy.intercept.addons import AddonError, load_addon_file
    from asgispy.intercept.rules import RuleError, load_rules

    try:
        for path in getattr(args, "addons", None) or ():
            load_addon_file(path)
        if getattr(args, "rules", None):
            load_rules(args.rules)
    except (AddonError, RuleError) as exc:
        return str(exc)
    return None


def uvicorn_arguments(args: argparse.Namespace, *, access_log: bool = False) -> list[str]:
    """uvicorn's command-line arguments for the options in ``args`` (our factory in APP's place).

    ``access_log`` is the default when the user said neither ``--access-log`` nor
    ``--no-access-log``: asgispy's own lines usually make uvicorn's redundant.
    """
    argv = [FACTORY, "--factory"]
    if args.app_dir:
        argv += ["--app-dir", args.app_dir]
    for option in OPTIONS:
        value = getattr(args, option.dest, None)
        if option.flag == "--access-log" and value is None:
            value = access_log
        if value is None or (value is False and option.kind == "flag"):
            continue
        if option.kind == "flag":
            argv.append(option.flag)
        elif option.kind == "toggle":
            argv.append(option.flag if value else "--no-" + option.flag[2:])
        elif option.kind == "append":
            for item in value:
                argv += [option.flag, str(item)]
        else:
            argv += [option.flag, str(value)]
    return argv


def server_command(args: argparse.Namespace, *, access_log: bool = False) -> list[str]:
    """The command that serves APP under uvicorn with Spy (run it with :func:`server_environment`)."""
    return [sys.executable, "-m", "asgispy.cli.serving", *uvicorn_arguments(args, access_log=access_log)]


def server_environment(
    args: argparse.Namespace,
    address: str,
    *,
    token: str | None = None,
    base: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment for :func:`server_command`: which app to serve, where to stream it."""
    from asgispy.wire.address import ENV_ADDRESS, ENV_TOKEN

    env = dict(os.environ if base is None else base)
    env[ENV_TARGET] = args.app
    env[ENV_ADDRESS] = address
    if args.factory:
        env[ENV_FACTORY] = "1"
    else:
        env.pop(ENV_FACTORY, None)
    env[ENV_INTERFACE] = args.interface
    if getattr(args, "layers", False):
        env[ENV_LAYERS] = "1"
    else:
        env.pop(ENV_LAYERS, None)
    addons = [os.path.abspath(path) for path in getattr(args, "addons", None) or ()]
    if addons:
        env[ENV_ADDONS] = os.pathsep.join(addons)
    else:
        env.pop(ENV_ADDONS, None)
    if getattr(args, "intercept", False):
        env[ENV_INTERCEPT] = "1"
    else:
        env.pop(ENV_INTERCEPT, None)
    for name, value in (
        (ENV_INSIDE, getattr(args, "inside", None)),
        (ENV_INSIDE_LEVEL, getattr(args, "inside_level", None) if getattr(args, "inside", None) else None),
        (ENV_INSIDE_SQL_PARAMS, "1" if getattr(args, "inside_sql_params", False) else None),
    ):
        if value:
            env[name] = str(value)
        else:
            env.pop(name, None)
    rules = getattr(args, "rules", None)
    if rules:
        env[ENV_RULES] = os.path.abspath(rules)
    else:
        env.pop(ENV_RULES, None)
    if token:
        env[ENV_TOKEN] = token
    else:
        env.pop(ENV_TOKEN, None)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


# In the uvicorn worker ---------------------------------------------------------------------------


def spied_app() -> Any:
    """uvicorn factory: import ``$ASGISPY_TARGET`` (as uvicorn would) and wrap it in Spy."""
    import logging

    from uvicorn.importer import ImportFromStringError, import_from_string

    logger = logging.getLogger("uvicorn.error")
    target = os.environ.get(ENV_TARGET, "")
    if not target:
        logger.error("Error loading ASGI app. %s is not set: start this through asgispy.", ENV_TARGET)
        sys.exit(STARTUP_FAILURE)
    try:
        app = import_from_string(target)
    except ImportFromStringError as exc:
        logger.error("Error loading ASGI app. %s", exc)
        sys.exit(STARTUP_FAILURE)
    if os.environ.get(ENV_FACTORY):
        try:
            app = app()
        except TypeError as exc:
            logger.error("Error loading ASGI app factory: %s", exc)
            sys.exit(STARTUP_FAILURE)
    app = _as_asgi3(app, os.environ.get(ENV_INTERFACE, "auto"))

    from asgispy.intercept.addons import AddonError
    from asgispy.intercept.rules import RuleError
    from asgispy.spy import Spy

    addons = [path for path in os.environ.get(ENV_ADDONS, "").split(os.pathsep) if path]
    try:
        return Spy(
            app,
            name=target,
            layers=bool(os.environ.get(ENV_LAYERS)),
            addons=addons,
            rules=os.environ.get(ENV_RULES) or None,
            intercept=(development := bool(os.environ.get(ENV_INTERCEPT))),
            time_sends=development,
            inside=os.environ.get(ENV_INSIDE) or False,
            inside_level=os.environ.get(ENV_INSIDE_LEVEL) or "INFO",
            inside_sql_params=bool(os.environ.get(ENV_INSIDE_SQL_PARAMS)),
        )
    except (AddonError, RuleError, ValueError) as exc:
        logger.error("Error loading asgispy's addons or rules: %s", exc)
        sys.exit(STARTUP_FAILURE)


def _as_asgi3(app: Any, interface: str) -> Any:
    # What uvicorn does to the app it loads; here, because uvicorn only sees our wrapper.
    import inspect

    if interface == "auto":
        if inspect.isclass(app):
            asgi3 = hasattr(app, "__await__")
        elif inspect.isfunction(app):
            asgi3 = inspect.iscoroutinefunction(app)
        else:
            asgi3 = inspect.iscoroutinefunction(type(app).__call__) if callable(app) else False
        interface = "asgi3" if asgi3 else "asgi2"
    if interface == "wsgi":
        from uvicorn.middleware.wsgi import WSGIMiddleware  # type: ignore[attr-defined]

        return WSGIMiddleware(app)
    if interface == "asgi2":
        from uvicorn.middleware.asgi2 import ASGI2Middleware

        return ASGI2Middleware(app)
    return app


# The child process -----------------------------------------------------------------------------


def _watch_parent(parent: int) -> None:
    import signal
    import time

    while os.getppid() == parent:
        time.sleep(0.5)
    # The viewer that started us is gone: stop as if it had asked (uvicorn shuts down cleanly).
    os.kill(os.getpid(), signal.SIGTERM)


def main(argv: Sequence[str] | None = None) -> None:
    import threading

    from uvicorn.main import main as uvicorn_main

    threading.Thread(target=_watch_parent, args=(os.getppid(),), name="asgispy-parent", daemon=True).start()
    uvicorn_main(args=list(sys.argv[1:] if argv is None else argv), prog_name="uvicorn")


if __name__ == "__main__":
    main()
