"""``asgispy demo --headless``: the demo without a screen, one printed line per connection.

The demo app, wrapped in Spy, runs under a real uvicorn inside this process (so lifespan
and WebSockets behave exactly as in production), the built-in traffic drives it, and each
connection is printed as it finishes. The session can be written out for ``asgispy open``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import socket
import sys
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from asgispy.spy import Spy

__all__ = ["run_headless"]

#: How often finished connections are looked for and printed.
POLL_INTERVAL = 0.1


def run_headless(
    port: int | None = None,
    rounds: int = 1,
    output: str | None = None,
    *,
    delay: float = 0.3,
    out: TextIO | None = None,
    err: TextIO | None = None,
    layers: bool = False,
) -> int:
    """Serve the demo on 127.0.0.1 (``port`` or any free one), drive ``rounds`` of traffic.

    ``rounds=0`` drives traffic until interrupted. Returns the exit status: 0 when the demo
    ran (and the session was written, if ``output`` was given), 1 otherwise.
    """
    if rounds < 0:
        raise ValueError("rounds must be 0 (until interrupted) or more")
    headless = _Headless(port, rounds, output, delay, out or sys.stdout, err or sys.stderr)
    headless.layers = layers
    return asyncio.run(headless.run())


class _Headless:
    def __init__(
        self, port: int | None, rounds: int, output: str | None, delay: float, out: TextIO, err: TextIO
    ) -> None:
        self.layers = False
        self.port = port or 0
        self.rounds = rounds
        self.output = output
        self.delay = delay
        self.out = out
        self.err = err
        self.printed: set[str] = set()

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def complain(self, text: str) -> None:
        print(f"asgispy demo: {text}", file=self.err, flush=True)

    async def run(self) -> int:
        spy = _demo_spy(self.layers)
        try:
            return await self._serve(spy)
        finally:
            spy.close()  # the hooks its inside recording installed in this process

    async def _serve(self, spy: Spy) -> int:
        import uvicorn

        from asgispy.demo.traffic import drive

        try:
            sock = _listen(self.port)
        except OSError as exc:
            self.complain(f"cannot listen on 127.0.0.1:{self.port}: {exc.strerror or exc}")
            return 1
        host, port = sock.getsockname()[:2]
        config = uvicorn.Config(
            spy, lifespan="on", log_level="warning", access_log=False, timeout_graceful_shutdown=5
        )
        server = uvicorn.Server(config)
        url = f"http://{host}:{port}"
        rounds = "until interrupted" if self.rounds == 0 else f"{self.rounds} round(s) of traffic"
        self.say(f"asgispy demo (headless): serving the demo app on {url}, {rounds}")

        with _quiet_app_errors():
            serving = asyncio.create_task(server.serve(sockets=[sock]))
            printer = asyncio.create_task(self._print_finished(spy))
            try:
                if not await _started(server, serving):
                    self.complain("the demo server did not start")
                    server.should_exit = True
                    with contextlib.suppress(Exception, SystemExit):
                        await serving
                    return 1
                stop = asyncio.Event()

                def traffic_said(text: str) -> None:
                    if not server.should_exit:  # after Ctrl-C the server going away is no news
                        self.complain(text)

                traffic = asyncio.create_task(
                    drive(url, rounds=self.rounds or None, delay=self.delay, stop=stop, log=traffic_said)
                )
                await asyncio.wait({traffic, serving}, return_when=asyncio.FIRST_COMPLETED)
                interrupted = server.should_exit
                if not traffic.done():
                    # The server stopped first: let the traffic notice and wind down.
                    stop.set()
                    await asyncio.wait({traffic}, timeout=2)
                    traffic.cancel()
                elif not traffic.cancelled():
                    self.say(f"traffic: {traffic.result().summary()}")
                if interrupted:
                    self.say("interrupted: stopping the demo server")
                server.should_exit = True
                await serving
            finally:
                server.should_exit = True
                printer.cancel()
                sock.close()
                self._print_new(spy)
        return self._finish(spy)

    def _finish(self, spy: Spy) -> int:
        kinds = Counter(record.type for record in spy.records)
        counts = ", ".join(f"{n} {kind}" for kind, n in kinds.most_common())
        self.say(f"recorded {len(spy.records)} connections ({counts or 'none'})")
        if self.output is None:
            return 0
        try:
            path = spy.export(self.output)
        except OSError as exc:
            self.complain(f"cannot write {self.output}: {exc.strerror or exc}")
            return 1
        self.say(f"session written to {path} (open it with: asgispy open {path})")
        return 0

    async def _print_finished(self, spy: Spy) -> None:
        while True:
            self._print_new(spy)
            await asyncio.sleep(POLL_INTERVAL)

    def _print_new(self, spy: Spy) -> None:
        from asgispy.exports.line import summary_line
        from asgispy.model.connection import Connection

        tag = spy.origin.tag
        for record in spy.records:
            if record.ended is None or record.id in self.printed:
                continue
            self.printed.add(record.id)
            conn = Connection.from_document(record.document(spy.redactor, tag))
            self.say(summary_line(conn))


def _demo_spy(layers: bool = False) -> Spy:
    from asgispy.demo.app import app
    from asgispy.spy import Spy

    options: dict[str, Any] = {"name": "asgispy.demo.app:app", "inside": ("http", "logging")}
    if "address" in inspect.signature(Spy).parameters:
        options["address"] = False  # print here instead of streaming to a dashboard
    if layers:
        options["layers"] = True
    return Spy(app, **options)


def _listen(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


async def _started(server: Any, serving: asyncio.Task[None], timeout: float = 10.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not server.started:
        if serving.done() or loop.time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


class _DropAppErrors(logging.Filter):
    """Keeps uvicorn from printing the demo's deliberate failure: the recording has it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Exception in ASGI application")


@contextlib.contextmanager
def _quiet_app_errors() -> Iterator[None]:
    logger = logging.getLogger("uvicorn.error")
    quiet = _DropAppErrors()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)
