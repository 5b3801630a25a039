"""The app the server matrix serves: ``edge_app`` under a log of what it saw, under ``Spy``.

Run by real servers in child processes (``granian --interface asgi tests.apps.matrix:app``,
``gunicorn -k uvicorn.workers.UvicornWorker``, ``daphne``, ``hypercorn``). Spy streams to
``$ASGISPY_ADDRESS``, as any app would. Inside Spy, :class:`SeenLog` keeps what the app itself
received and sent, and appends it, once each connection ends, to ``seen-<pid>.pickle`` in
``$MATRIX_SEEN``: the test then holds, for every connection of every worker, the yardstick its
recording is compared with (pickle, so bytes stay bytes and tuples stay tuples).

A connection is matched to its recording by its ``x-matrix-id`` request header (the test gives
each request one), a lifespan by its worker's pid.
"""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import threading
from dataclasses import dataclass, field
from typing import Any

from asgispy import Spy
from tests.apps.raw import Scope, edge_app
from tests.apps.recording import deep_copy

#: Where each worker appends what its app saw (unset: nothing is kept).
SEEN_DIR = "MATRIX_SEEN"
#: Seconds the workers but the first take to shut down (unset: none).
SLOW_SHUTDOWN = "MATRIX_SLOW_SHUTDOWN"
#: The request header that names a connection for the test.
ID_HEADER = b"x-matrix-id"


@dataclass
class Foreign:
    """A value pickle could not carry (an object a server put in the scope): its type's name."""

    type: str
    repr: str


@dataclass
class SeenConnection:
    """One connection as the app saw it: the scope, each message, and what it raised."""

    pid: int
    key: str
    scope: dict[str, Any]
    events: list[tuple[str, Any]] = field(default_factory=list)
    error: tuple[str, str] | None = None


def portable(value: Any) -> Any:
    """``value`` with every object that is not ASGI data replaced by a :class:`Foreign`."""
    kind = type(value)
    if kind is dict:
        return {k: portable(v) for k, v in value.items()}
    if kind is list:
        return [portable(v) for v in value]
    if kind is tuple:
        return tuple(portable(v) for v in value)
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    return Foreign(f"{kind.__module__}.{kind.__qualname__}", repr(value))


def connection_key(scope: Scope) -> str:
    """The test's name for a connection: its ``x-matrix-id``, else ``lifespan``, else its path."""
    if scope["type"] == "lifespan":
        return "lifespan"
    for name, value in scope.get("headers") or ():
        if bytes(name).lower() == ID_HEADER:
            return bytes(value).decode("latin-1")
    return str(scope.get("path"))


class SeenLog:
    """A plain recording middleware that writes each ended connection to this worker's file."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()

    def write(self, seen: SeenConnection) -> None:
        directory = os.environ.get(SEEN_DIR)
        if not directory:
            return
        data = pickle.dumps(seen)
        with self.lock, open(os.path.join(directory, f"seen-{os.getpid()}.pickle"), "ab") as file:
            file.write(data)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        seen = SeenConnection(os.getpid(), connection_key(scope), portable(deep_copy(scope)))

        async def seen_receive() -> Any:
            message = await receive()
            seen.events.append(("receive", portable(deep_copy(message))))
            return message

        async def seen_send(message: Any) -> None:
            seen.events.append(("send", portable(deep_copy(message))))
            await send(message)

        try:
            await self.app(scope, seen_receive, seen_send)
        except BaseException as exc:
            seen.error = (f"{type(exc).__module__}.{type(exc).__qualname__}", str(exc))
            raise
        finally:
            self.write(seen)


def read_seen(directory: str | os.PathLike[str]) -> list[SeenConnection]:
    """Every connection the app's workers logged in ``directory``, file by file, in order."""
    seen: list[SeenConnection] = []
    for name in sorted(os.listdir(directory)):
        if not name.startswith("seen-"):
            continue
        with open(os.path.join(directory, name), "rb") as file:
            while True:
                try:
                    seen.append(pickle.load(file))
                except EOFError:
                    break
    return seen


async def lifespan(scope: Scope, receive: Any, send: Any) -> None:
    """Startup fills the state; at shutdown, every worker but the first to get there takes
    ``$MATRIX_SLOW_SHUTDOWN`` seconds, so that a server that does not wait for each of its
    workers shows it."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if isinstance(scope.get("state"), dict):
                scope["state"]["started"] = True
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            delay = float(os.environ.get(SLOW_SHUTDOWN) or 0)
            if delay and not first_to_shut_down():
                await asyncio.sleep(delay)
            await send({"type": "lifespan.shutdown.complete"})
            return


def first_to_shut_down() -> bool:
    """Whether this worker is the first of its server to shut down (a file says who was)."""
    try:
        os.close(os.open(os.path.join(os.environ[SEEN_DIR], "shut-down"), os.O_CREAT | os.O_EXCL))
    except (FileExistsError, KeyError):
        return False
    return True


async def matrix_app(scope: Scope, receive: Any, send: Any) -> None:
    """``edge_app``, plus ``/whoami`` (the worker's pid, as JSON), ``/late`` (one chunk, then
    a last one sent after the client has gone, to see what the server does with it) and a
    lifespan of its own."""
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
        return
    path = scope.get("path") if scope["type"] == "http" else None
    if path == "/whoami":
        while (await receive()).get("more_body"):
            pass
        body = json.dumps({"pid": os.getpid()}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})
    elif path == "/late":
        while (await receive()).get("more_body"):
            pass
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"first\n", "more_body": True})
        while (await receive())["type"] != "http.disconnect":
            pass
        await send({"type": "http.response.body", "body": b"too late\n"})
    else:
        await edge_app(scope, receive, send)


app = Spy(SeenLog(matrix_app), name="tests.apps.matrix", time_sends=True)
