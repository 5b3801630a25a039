"""``--web``: the dashboard served to a browser, through textual-serve.

textual-serve answers each browser tab by starting a command (here, an asgispy dashboard) with
Textual's web driver and relaying its screen over a WebSocket. So each mode picks the command
a tab runs:

* ``open FILE --web`` and ``demo --web``: each tab runs its own ``asgispy open FILE`` (or demo).
* ``attach --web``: each tab runs ``asgispy attach`` on the same addresses. An address has one
  listener, so one tab at a time is live: a newer tab takes over from the older one.
* ``run APP --web``: APP is served once, here, under uvicorn in a child (as ``asgispy record``
  does), streaming to a private socket; each tab runs an attach-style dashboard on that socket
  with ``run``'s breakpoints. The app keeps what recently ended and sends it to the dashboard
  that appears, so a tab opened late, or reloaded, still sees the last connections.

textual-serve is imported only here, inside :func:`serve`: it is the optional extra ``web``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["add_web_arguments", "run", "session_command"]

#: The port the dashboard is served on unless --web-port says otherwise.
DEFAULT_PORT = 8765
#: How long a tab's dashboard gets to quit when a newer tab takes over, or at shutdown.
SESSION_GRACE = 10.0
#: uvicorn's --timeout-graceful-shutdown for the served app unless the user gives one.
APP_SHUTDOWN = 3
#: How long the served app gets to stop on its own before it is killed.
APP_GRACE = 10.0
MISSING = "--web needs textual-serve: pip install 'asgispy[web]'"


def add_web_arguments(parser: argparse.ArgumentParser, *, short_names: bool) -> None:
    """``--web``, ``--web-host`` and ``--web-port``; ``short_names`` adds ``--host`` and ``--port``
    (for ``open`` and ``attach``, where they mean nothing else)."""
    group = parser.add_argument_group("in a browser (needs asgispy[web]; docs/dashboard.md)")
    group.add_argument(
        "--web", action="store_true", help="serve the dashboard to a browser instead of this terminal"
    )
    hosts = ["--web-host", "--host"] if short_names else ["--web-host"]
    ports = ["--web-port", "--port"] if short_names else ["--web-port"]
    group.add_argument(
        *hosts, dest="web_host", default=None, metavar="HOST", help="serve on HOST (default: 127.0.0.1)"
    )
    group.add_argument(
        *ports,
        dest="web_port",
        type=int,
        default=None,
        metavar="PORT",
        help=f"serve on PORT; 0 picks a free one (default: {DEFAULT_PORT})",
    )


def session_command(args: argparse.Namespace, command: str) -> list[str]:
    """What one browser tab runs for ``open``, ``attach`` or ``demo``: the same command, on screen."""
    argv = [sys.executable, "-m", "asgispy", command]
    if command == "open":
        argv += [os.path.abspath(args.file)]
        if args.app:
            argv += ["--app", args.app, "--app-dir", args.app_dir or os.getcwd()]
            argv += ["--factory"] if args.factory else []
    elif command == "attach":
        for address in args.listen:
            argv += ["--listen", address]
        argv += ["--token", args.token] if args.token else []
        argv += ["--allow-remote"] if args.allow_remote else []
    elif command == "demo":
        argv += ["--delay", str(args.delay)] + (["--layers"] if args.layers else [])
        argv += ["--rounds", str(args.rounds)] if args.rounds is not None else []
        return argv
    return [*argv, "--max-connections", str(args.max_connections)]


def run(args: argparse.Namespace, command: str) -> int:
    """``asgispy COMMAND ... --web``: check what was asked, then serve until Ctrl-C."""
    prefix = f"asgispy {command}"
    if getattr(args, "jsonl", None):
        print(
            f"{prefix}: --jsonl and --web: each browser tab is a dashboard of its own; "
            "record the traffic with `asgispy record` instead",
            file=sys.stderr,
        )
        return 2
    host = args.web_host or "127.0.0.1"
    port = DEFAULT_PORT if args.web_port is None else args.web_port
    if not 0 <= port <= 65535:
        print(f"{prefix}: --web-port {port}: a port is between 0 and 65535", file=sys.stderr)
        return 2
    try:
        import textual_serve.server  # noqa: F401
    except ImportError:
        print(f"{prefix}: {MISSING}", file=sys.stderr)
        return 2
    if command == "open":
        problem = _check_session(args.file)
        if problem:
            print(f"{prefix}: {problem}", file=sys.stderr)
            return 2
    if not _is_loopback(host):
        print(
            f"{prefix}: warning: serving on {host}, beyond this machine: anyone who can reach it can "
            "see the recorded traffic (headers, bodies) and drive the dashboard",
            file=sys.stderr,
        )
    if port == 0:
        try:
            port = _free_port(host)
        except OSError as exc:
            print(f"{prefix}: cannot serve the dashboard on {host}: {exc.strerror or exc}", file=sys.stderr)
            return 1
    if command != "run":
        title = f"asgispy {command}" + (f" {os.path.basename(args.file)}" if command == "open" else "")
        return serve(session_command(args, command), host, port, title, one_tab=command == "attach")
    return _run_app(args, host, port)


def _run_app(args: argparse.Namespace, host: str, port: int) -> int:
    """``run APP --web``: APP once, under uvicorn in a child; each tab a dashboard on its socket."""
    from asgispy.cli import serving
    from asgispy.wire.address import runtime_directory

    # A socket of this server's own, so that two `asgispy run` never mix their apps.
    listen = args.listen or [f"unix:{runtime_directory() / f'web-{os.getpid()}.sock'}"]
    if args.uvicorn_timeout_graceful_shutdown is None:
        # As under `asgispy record`: a stream still open at Ctrl-C does not hold the app for long.
        args.uvicorn_timeout_graceful_shutdown = APP_SHUTDOWN
    app = subprocess.Popen(
        serving.server_command(args),
        env=serving.server_environment(args, listen[0], token=args.token),
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C reaches us only: we stop the app in order
    )
    argv = [sys.executable, "-m", "asgispy.cli.webtab", "--source", args.app]
    for address in listen:
        argv += ["--listen", address]
    argv += ["--token", args.token] if args.token else []
    argv += ["--allow-remote"] if args.allow_remote else []
    for expression in args.break_requests:
        argv += ["--break", expression]
    for expression in args.break_responses:
        argv += ["--break-response", expression]
    argv += ["--break-timeout", str(args.break_timeout), "--max-connections", str(args.max_connections)]
    try:
        code = serve(argv, host, port, f"asgispy run {args.app}", one_tab=True, app=app)
    finally:
        _stop(app)
    return code if code else (app.returncode if app.returncode not in (None, 0, -signal.SIGTERM) else 0)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the served app as uvicorn likes (SIGTERM: lifespan shutdown), then, if need be, kill it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(APP_GRACE)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # the reloader's or supervisor's workers too
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(APP_GRACE)


def serve(
    argv: Sequence[str],
    host: str,
    port: int,
    title: str,
    *,
    one_tab: bool = False,
    app: subprocess.Popen[bytes] | None = None,
) -> int:
    """Serve ``argv`` (run once per browser tab) on ``host:port`` until Ctrl-C or SIGTERM.

    ``one_tab``: a newer tab stops the older one's dashboard first (its collector lets go of the
    address). ``app``: the served app; when it exits on its own, the web server stops too.
    """
    import logging

    from textual_serve.server import Server

    code = 0

    class WebServer(Server):
        def __init__(self) -> None:
            url_host = f"[{host}]" if ":" in host else host
            if host in ("0.0.0.0", "::"):
                import socket

                url_host = socket.getfqdn()
            super().__init__(
                shlex.join(argv), host=host, port=port, title=title, public_url=f"http://{url_host}:{port}"
            )
            self.tabs: dict[asyncio.Task[Any], Any] = {}
            self.watcher: asyncio.Task[None] | None = None

        def initialize_logging(self) -> None:
            # textual-serve's own log only, and quietly: the root logger is the app's, not ours.
            log = logging.getLogger("textual-serve")
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("asgispy web: %(message)s"))
            log.addHandler(handler)
            log.setLevel(logging.WARNING)
            log.propagate = False

        async def on_startup(self, web_app: Any) -> None:
            print(
                f"asgispy: {title}: the dashboard is at {self.public_url}/ (open it in a browser; "
                "Ctrl-C to stop)",
                file=sys.stderr,
                flush=True,
            )
            if app is not None:
                self.watcher = asyncio.ensure_future(self._watch_app())

        async def on_shutdown(self, web_app: Any) -> None:
            # aiohttp would wait for open WebSockets; the tabs' dashboards are told to quit instead.
            if self.watcher is not None:
                self.watcher.cancel()
            await self._end_tabs()

        async def _end_tabs(self) -> None:
            """Drop every tab's connection, so that its dashboard is told to quit, and wait for it."""
            tabs = dict(self.tabs)
            for request in tabs.values():
                # Closing the socket, not the WebSocket: a close handshake would wait on the browser.
                if request.transport is not None:
                    request.transport.close()
            if tabs:
                _, late = await asyncio.wait(tabs, timeout=SESSION_GRACE)
                for task in late:
                    task.cancel()

        async def handle_websocket(self, request: Any) -> Any:
            if one_tab:
                await self._end_tabs()
            task = asyncio.current_task()
            assert task is not None
            self.tabs[task] = request
            try:
                return await super().handle_websocket(request)
            finally:
                self.tabs.pop(task, None)

        async def _watch_app(self) -> None:
            nonlocal code
            assert app is not None
            while app.poll() is None:
                await asyncio.sleep(0.25)
            code = app.returncode or 1
            print(f"asgispy: the app exited ({app.returncode}); stopping", file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGTERM)  # textual-serve's own way out: a graceful exit

    server = WebServer()
    try:
        server.serve()
    except OSError as exc:
        print(f"asgispy: cannot serve the dashboard on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return code


def _check_session(path: str) -> str | None:
    """Why FILE cannot be opened, found once here rather than in every tab; None when it can."""
    from asgispy.codec.sessionfile import SessionFileError
    from asgispy.store.load import load

    if not os.path.isfile(path):
        return f"{path}: no such file"
    try:
        load(path)
    except (SessionFileError, ValueError, OSError) as exc:
        return str(exc)
    return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _free_port(host: str) -> int:
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.bind((host.strip("[]"), 0))
        return int(sock.getsockname()[1])
