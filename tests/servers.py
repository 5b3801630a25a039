"""Run a real ASGI server on 127.0.0.1, on a free port, in a background thread.

Tests that must cross the real boundary (sockets, a server's own parser and its own ASGI
messages) use this instead of calling the app directly::

    from tests.servers import UVICORN_H11, serve

    with serve(app, UVICORN_H11) as server:
        httpx.get(server.url("/items?q=1"))
        websockets.sync.client.connect(server.ws_url("/ws"))

``serve`` binds the listening socket itself (port 0, so the kernel picks a free port and
parallel runs never clash), starts the server in a daemon thread with its own event loop,
returns once the server accepts connections (so lifespan startup has run), and on exit
asks the server to stop gracefully, which runs lifespan shutdown, and joins the thread.
A server that fails to start or to stop in time raises :class:`ServerError` rather than
hanging the suite.

Servers are described by :class:`ServerSpec`; the module-level constants cover what the
tests exercise (uvicorn with h11 or httptools; websockets, websockets-sansio or wsproto;
Hypercorn).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "CLEAN_LIFESPAN",
    "HYPERCORN",
    "SERVERS",
    "UVICORN_H11",
    "UVICORN_HTTPTOOLS",
    "UVICORN_SANSIO",
    "UVICORN_WSPROTO",
    "RunningServer",
    "ServerError",
    "ServerSpec",
    "serve",
]

HOST = "127.0.0.1"

#: The messages of a lifespan that starts and stops cleanly, in order: what a recording of an
#: app that a server started and stopped holds for its lifespan connection.
CLEAN_LIFESPAN = [
    "lifespan.startup",
    "lifespan.startup.complete",
    "lifespan.shutdown",
    "lifespan.shutdown.complete",
]

Lifespan = Literal["on", "off", "auto"]


class ServerError(RuntimeError):
    """The server did not start, or did not stop, within the time allowed."""


@dataclass(frozen=True)
class ServerSpec:
    """Which server to run and with which protocol implementations.

    ``http`` and ``ws`` are uvicorn's names (``h11``/``httptools``, ``websockets``/``wsproto``);
    Hypercorn has its own single implementation of each and ignores them.
    """

    name: Literal["uvicorn", "hypercorn"]
    http: str = "h11"
    ws: str = "websockets"

    @property
    def id(self) -> str:
        """A short label for test ids: ``uvicorn-h11-websockets``, ``hypercorn``."""
        return self.name if self.name == "hypercorn" else f"{self.name}-{self.http}-{self.ws}"

    def __str__(self) -> str:
        return self.id


UVICORN_H11 = ServerSpec("uvicorn", "h11", "websockets")
UVICORN_HTTPTOOLS = ServerSpec("uvicorn", "httptools", "websockets")
UVICORN_WSPROTO = ServerSpec("uvicorn", "h11", "wsproto")
UVICORN_SANSIO = ServerSpec("uvicorn", "h11", "websockets-sansio")
HYPERCORN = ServerSpec("hypercorn")
SERVERS = (UVICORN_H11, UVICORN_HTTPTOOLS, UVICORN_WSPROTO, UVICORN_SANSIO, HYPERCORN)


@dataclass
class RunningServer:
    """A server started by :func:`serve`: where to reach it, and whether it failed."""

    spec: ServerSpec
    port: int
    host: str = HOST
    errors: list[BaseException] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.base_url + path

    def ws_url(self, path: str = "/") -> str:
        return f"ws://{self.host}:{self.port}{path}"


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(128)
    return sock


class _Runner:
    """Owns the thread; ``start`` blocks until ready, ``stop`` until the thread ended."""

    def __init__(self, app: Any, spec: ServerSpec, lifespan: Lifespan, options: dict[str, Any]) -> None:
        self.app = app
        self.spec = spec
        self.lifespan = lifespan
        self.options = options
        self.sock = _listening_socket()
        self.running = RunningServer(spec, self.sock.getsockname()[1])
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._thread, name=f"server-{spec.id}", daemon=True)
        self._stop: Callable[[], None] = lambda: None

    def _thread(self) -> None:
        try:
            if self.spec.name == "uvicorn":
                self._run_uvicorn()
            else:
                self._run_hypercorn()
        except BaseException as exc:  # SystemExit from a failed startup included
            self.running.errors.append(exc)
        finally:
            self.ready.set()

    def _run_uvicorn(self) -> None:
        import uvicorn

        config = uvicorn.Config(
            self.app,
            http=self.spec.http,
            ws=self.spec.ws,
            lifespan=self.lifespan,
            loop="asyncio",
            log_config=None,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
            **self.options,
        )
        server = uvicorn.Server(config)

        async def main() -> None:
            watcher = asyncio.create_task(self._watch_uvicorn(server))
            try:
                await server.serve(sockets=[self.sock])
            finally:
                watcher.cancel()

        def stop() -> None:
            server.should_exit = True

        self._stop = stop
        asyncio.run(main())

    async def _watch_uvicorn(self, server: Any) -> None:
        while not server.started:
            await asyncio.sleep(0.002)
        self.ready.set()

    def _run_hypercorn(self) -> None:
        # Hypercorn's public ``serve`` binds sockets itself; ``worker_serve`` (what ``serve`` calls)
        # takes ours, so the port is known before it starts and nothing is left open after.
        from hypercorn.asyncio.run import worker_serve
        from hypercorn.config import Config, Sockets
        from hypercorn.utils import wrap_app

        config = Config()
        config.accesslog = None
        config.errorlog = None
        config.graceful_timeout = 5
        config.shutdown_timeout = 5
        for key, value in self.options.items():
            setattr(config, key, value)
        app = self.app
        if self.lifespan == "off":
            app = _without_lifespan(app)
        sockets = Sockets(secure_sockets=[], insecure_sockets=[self.sock], quic_sockets=[])

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()

            async def shutdown_trigger() -> None:
                # Hypercorn awaits this once lifespan startup ran and its servers listen.
                self.ready.set()
                await stop.wait()

            def request_stop() -> None:
                loop.call_soon_threadsafe(stop.set)

            self._stop = request_stop
            wrapped = wrap_app(app, config.wsgi_max_body_size, "asgi")
            await worker_serve(wrapped, config, sockets=sockets, shutdown_trigger=shutdown_trigger)

        asyncio.run(main())

    def start(self, timeout: float) -> None:
        self.thread.start()
        if not self.ready.wait(timeout):
            raise ServerError(f"{self.spec} did not start within {timeout} s")
        if self.running.errors or not self.thread.is_alive():
            errors = self.running.errors
            raise ServerError(f"{self.spec} failed to start: {errors[0]!r}" if errors else "exited")

    def stop(self, timeout: float) -> None:
        if self.thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop may close between the check and the call
                self._stop()
            self.thread.join(timeout)
        self.sock.close()
        if self.thread.is_alive():
            raise ServerError(f"{self.spec} did not stop within {timeout} s")


def _without_lifespan(app: Any) -> Any:
    # Hypercorn has no "lifespan off" switch; an app that refuses lifespan is the same thing.
    async def refuse_lifespan(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("lifespan is off")
        await app(scope, receive, send)

    return refuse_lifespan


@contextlib.contextmanager
def serve(
    app: Any,
    spec: ServerSpec = UVICORN_H11,
    *,
    lifespan: Lifespan = "auto",
    timeout: float = 10.0,
    **options: Any,
) -> Iterator[RunningServer]:
    """Serve ``app`` with ``spec`` on 127.0.0.1 for the duration of the ``with`` block.

    ``lifespan`` is uvicorn's setting ("auto" tolerates apps without lifespan support).
    Extra ``options`` go to ``uvicorn.Config`` or onto Hypercorn's ``Config``. Errors the
    server thread ended with are in ``server.errors`` after the block.
    """
    runner = _Runner(app, spec, lifespan, options)
    started = time.monotonic()
    try:
        runner.start(timeout)
        yield runner.running
    finally:
        runner.stop(max(timeout - (time.monotonic() - started), 5.0))
