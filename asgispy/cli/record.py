"""``asgispy record``: record traffic to a file, headless.

Two ways in. ``record APP -o FILE`` serves APP under uvicorn with Spy (a collector in this
process, uvicorn with every worker under Spy in a child). ``record --listen [ADDRESS] -o FILE``
is the collector alone, for apps that already use ``Spy(app)`` under any server (Hypercorn,
Granian, Daphne, gunicorn): it takes in every process that streams to ADDRESS (by default the
per-user socket, where ``Spy`` streams unless told otherwise).

One line is printed per finished connection. On Ctrl-C or SIGTERM the server (if ours) is
stopped cleanly, so its lifespan shutdown is recorded too, and the session is written to FILE
atomically, connections still open marked cut off. With ``--jsonl`` every change is appended to
FILE as it arrives instead, so a long recording holds nothing in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asgispy.cli.dashboard import add_listen_arguments
from asgispy.cli.serving import add_server_arguments, check_app_string, check_inside, check_interception

if TYPE_CHECKING:
    from asgispy.exports.eventlog import EventLog

__all__ = ["add_parser", "run"]

logger = logging.getLogger("asgispy")

#: uvicorn's --timeout-graceful-shutdown unless the user gives one: then running requests are
#: cancelled (and recorded so), and the app's lifespan shutdown still runs and is recorded.
GRACEFUL_SHUTDOWN = 3
#: How long the server gets to stop on its own before it is killed.
STOP_GRACE = 15.0
#: How often a --jsonl file is flushed to disk.
FLUSH_EVERY = 0.2


def add_parser(subparsers: Any, name: str, help: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help,
        description=(
            "Serve APP under uvicorn with every connection recorded, or (--listen) record the apps "
            "that already use Spy(app) under any server. One line is printed per finished "
            "connection; Ctrl-C (or SIGTERM) stops and writes the session to FILE, which "
            "`asgispy open` and asgispy.load() read."
        ),
    )
    add_server_arguments(parser, optional=True)
    collecting = parser.add_argument_group("recording apps that already use Spy(app) (instead of APP)")
    add_listen_arguments(
        collecting,
        "collect from every process using Spy(app) at ADDRESS (unix:PATH or tcp://HOST:PORT; "
        "repeatable); without ADDRESS, the per-user socket Spy streams to by default",
        address_optional=True,
    )
    group = parser.add_argument_group("recording")
    group.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="where to write the session (default: asgispy-DATE-TIME.json, or .jsonl with --jsonl)",
    )
    group.add_argument(
        "--jsonl",
        action="store_true",
        help="stream every event to FILE as it arrives (a JSON object a line) instead of writing at the end",
    )
    group.add_argument("-q", "--quiet", action="store_true", help="print no line per connection")
    group.add_argument(
        "--address",
        metavar="ADDRESS",
        help="where the app's workers stream to (default: a private Unix socket for this run)",
    )
    group.add_argument(
        "--max-connections",
        type=int,
        default=100_000,
        metavar="N",
        help="connections kept for the session file; the oldest go first (default: 100000)",
    )
    from asgispy.cli.export import add_otlp_arguments

    add_otlp_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    listening = args.listen is not None
    if listening and args.app:
        print(
            "asgispy record: give APP to serve it, or --listen to record apps that already use Spy(app), "
            "not both (--address chooses where APP's workers stream)",
            file=sys.stderr,
        )
        return 2
    if listening and (args.addons or args.rules):
        print(
            "asgispy record: --addon and --rules change the traffic of an APP asgispy serves; apps that "
            "already use Spy(app) take them as Spy(app, addons=..., rules=...)",
            file=sys.stderr,
        )
        return 2
    if not listening:
        if not args.app:
            print(
                "asgispy record: give APP to serve (like main:app), or --listen to record apps that "
                "already use Spy(app) under any server",
                file=sys.stderr,
            )
            return 2
        problem = check_app_string(args.app)
        if problem is not None:
            print(f"asgispy record: {problem}", file=sys.stderr)
            return 3
        problem = check_interception(args) or check_inside(args)
        if problem is not None:
            print(f"asgispy record: {problem}", file=sys.stderr)
            return 2
    if args.app_dir and not os.path.isdir(args.app_dir):
        print(f"asgispy record: --app-dir {args.app_dir}: no such directory", file=sys.stderr)
        return 2
    output = Path(args.output or _default_output(args.jsonl))
    if output.is_dir():
        print(f"asgispy record: {output} is a directory; give a file name with -o", file=sys.stderr)
        return 2
    if not output.parent.is_dir():
        print(f"asgispy record: {output.parent}: no such directory", file=sys.stderr)
        return 2
    if not os.access(output.parent, os.W_OK):
        print(f"asgispy record: cannot write to {output.parent}", file=sys.stderr)
        return 2
    from asgispy.cli.export import otlp_settings

    otlp = otlp_settings("record", args)
    if isinstance(otlp, int):
        return otlp
    if args.uvicorn_timeout_graceful_shutdown is None:
        # A request still running at Ctrl-C would otherwise hold uvicorn (and the file) forever.
        args.uvicorn_timeout_graceful_shutdown = GRACEFUL_SHUTDOWN
    _configure_logging()
    return asyncio.run(_Recorder(args, output, otlp).run())


def _default_output(jsonl: bool) -> str:
    return time.strftime("asgispy-%Y%m%d-%H%M%S") + (".jsonl" if jsonl else ".json")


def _configure_logging() -> None:
    log = logging.getLogger("asgispy")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("asgispy: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.WARNING)
        log.propagate = False


class _Recorder:
    def __init__(self, args: argparse.Namespace, output: Path, otlp: dict[str, Any] | None = None) -> None:
        from asgispy.store.store import Store

        self.args = args
        self.output = output
        # In --jsonl mode the file has everything: the store need only keep what is running.
        limit = 1000 if args.jsonl else max(args.max_connections, 1)
        self.store = Store(max_connections=limit, max_bytes=1 << 62 if not args.jsonl else 256 << 20)
        self.printed: set[str] = set()
        self.stop_requested: asyncio.Event | None = None
        self.signals = 0
        self.log: EventLog | None = None
        self.listening = args.listen is not None
        self.producer_seen: dict[str, bool] = {}
        self.otlp = otlp

    async def run(self) -> int:
        from asgispy.wire.address import ensure_private_directory, runtime_directory
        from asgispy.wire.collector import Collector, CollectorError

        args = self.args
        loop = asyncio.get_running_loop()
        self.stop_requested = asyncio.Event()
        try:
            if self.listening:
                addresses = [address for address in args.listen if address]  # none: the default socket
            elif args.address:
                addresses = [args.address]
            else:
                directory = ensure_private_directory(runtime_directory())
                addresses = [f"unix:{directory / f'record-{os.getpid()}.sock'}"]
            collector = Collector(self.store, addresses, token=args.token, allow_remote=args.allow_remote)
            await collector.start()
        except (CollectorError, ValueError) as exc:
            print(f"asgispy record: {exc}", file=sys.stderr)
            return 1
        forwarder = None
        if self.otlp is not None:
            # Spans leave as each connection ends, batched, from a thread of the forwarder's own:
            # a slow or dead endpoint costs dropped spans (counted), never the session file.
            from asgispy.exports.otlp import OtlpForwarder

            forwarder = OtlpForwarder(self.store, **self.otlp)
        try:
            if args.jsonl:
                from asgispy.exports.eventlog import EventLog

                self.log = EventLog(self.store, self.output, flush_every=FLUSH_EVERY)
            if not args.quiet:
                self.store.subscribe(self._print)
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self._on_signal)
            if self.listening:
                self.store.subscribe(self._producer_line)
                streaming = " (streaming)" if args.jsonl else ""
                where = ", ".join(str(address) for address in collector.addresses)
                print(
                    f"asgispy: recording apps that use Spy(app) at {where} to {self.output}{streaming}; "
                    "Ctrl-C to stop",
                    file=sys.stderr,
                )
                await self.stop_requested.wait()
                code = 0
            else:
                code = await self._serve_app(collector)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            await collector.stop()
        stopped_by_us = self.stop_requested.is_set()
        try:
            self._finish(empty_ok=not stopped_by_us and code != 0)
        finally:
            if forwarder is not None:
                # After the collector stopped: what was cut off, and the lifespan shutdown, go too.
                summary = await loop.run_in_executor(None, forwarder.close)
                print(f"asgispy: {summary}", file=sys.stderr)
        return 0 if stopped_by_us else code

    async def _serve_app(self, collector: Any) -> int:
        """Serve APP in a child streaming to ``collector`` until it exits or we are asked to stop."""
        from asgispy.cli.serving import server_command, server_environment

        args = self.args
        process = await asyncio.create_subprocess_exec(
            *server_command(args),
            env=server_environment(args, str(collector.addresses[0]), token=args.token),
            stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches us only; we stop the server in order
        )
        streaming = " (streaming)" if args.jsonl else ""
        print(f"asgispy: recording {args.app} to {self.output}{streaming}; Ctrl-C to stop", file=sys.stderr)
        code = await self._serve(process)
        # The server has exited: take in what its workers sent last, then let go of them.
        await collector.wait_disconnected(2.0)
        return code

    def _on_signal(self) -> None:
        assert self.stop_requested is not None
        self.signals += 1
        self.stop_requested.set()

    async def _serve(self, process: asyncio.subprocess.Process) -> int:
        assert self.stop_requested is not None
        waiter = asyncio.ensure_future(process.wait())
        stopper = asyncio.ensure_future(self.stop_requested.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if not waiter.done():
            self._signal(process, signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE
            forced = False
            while not waiter.done() and time.monotonic() < deadline and self.signals < 3:
                if self.signals == 2 and not forced:
                    forced = True  # asked twice: as with uvicorn, stop waiting for connections
                    self._signal(process, signal.SIGINT)
                await asyncio.wait({waiter}, timeout=0.1)
            if not waiter.done():
                self._signal(process, signal.SIGKILL)
        stopper.cancel()
        return await waiter

    @staticmethod
    def _signal(process: asyncio.subprocess.Process, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            if sig == signal.SIGKILL:
                os.killpg(process.pid, sig)  # the reloader's or supervisor's workers too
            else:
                process.send_signal(sig)

    def _producer_line(self, change: Any) -> None:
        # Headless, the only sign that an app found the recorder (or lost it) is this line.
        if change.kind != "producer" or change.producer is None:
            return
        state = self.store.producers.get(change.producer)
        if state is None or self.producer_seen.get(change.producer) == state.connected:
            return
        self.producer_seen[change.producer] = state.connected
        info = state.info
        what = "streaming" if state.connected else "gone"
        with contextlib.suppress(BrokenPipeError, ValueError):
            print(f"asgispy: {info.app} (pid {info.pid} on {info.host}): {what}", file=sys.stderr, flush=True)

    def _print(self, change: Any) -> None:
        from asgispy.exports.line import summary_line

        conn = change.connection
        if change.kind == "evict" and conn is not None:
            self.printed.discard(conn.id)
            return
        if change.kind != "close" or conn is None or conn.outcome == "open" or conn.id in self.printed:
            return
        self.printed.add(conn.id)
        with contextlib.suppress(BrokenPipeError, ValueError):  # stdout gone: keep recording regardless
            print(summary_line(conn), flush=True)

    def _finish(self, empty_ok: bool) -> None:
        store = self.store
        count = len(store)
        if self.log is not None:
            self.log.close()
            what = f"{self.log.connections} connections"
        else:
            if count == 0 and empty_ok:
                return  # the server failed before anything happened: write no empty file
            from asgispy.codec.sessionfile import write_session

            session = store.session()
            for conn in session.connections:
                if conn.outcome == "open":
                    conn.outcome = "cut off"
            write_session(self.output, session.document())
            what = f"{count} connections"
        notes = []
        if store.dropped:
            notes.append(f"{store.dropped} events dropped by the app's workers (the recorder fell behind)")
        if store.evicted and self.log is None:
            notes.append(f"the {store.evicted} oldest connections were not kept (use --jsonl for long runs)")
        extra = f" ({'; '.join(notes)})" if notes else ""
        print(f"asgispy: wrote {what} to {self.output}{extra}", file=sys.stderr)
