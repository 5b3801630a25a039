"""Replay recorded requests through an app's own ASGI interface, in-process, inside its lifespan.

Each recorded HTTP request is sent again as it was (its scope, its ``http.request`` messages,
chunking included) and each WebSocket conversation by its client's side; what the app sends
now is recorded by Spy, as any traffic is, and compared with what it sent then. Header values
that were redacted when recorded cannot be sent as they were: the user supplies them, and a
request that needed one that is missing is reported as such instead of as a difference.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from asgispy.codec.redact import REDACTED
from asgispy.model.connection import Connection
from asgispy.replay.lifespan import Lifespan
from asgispy.replay.stubs import Stubs, answering, stubbing
from asgispy.spy import Spy
from asgispy.store.load import session_from_document

__all__ = ["Replayed", "replay"]

#: The longest one replayed connection may take.
TIMEOUT = 30.0


@dataclass
class Replayed:
    """One recorded connection and what the app did with it now (None: it sent nothing);
    ``missing_secrets``: redacted headers nobody supplied, left out of the request;
    ``unrecorded``: outgoing calls with no recorded answer (``stub_calls``), never sent."""

    recorded: Connection
    now: Connection | None
    missing_secrets: list[str] = field(default_factory=list)
    error: str | None = None
    unrecorded: list[str] = field(default_factory=list)


async def replay(
    app: Any,
    connections: Sequence[Connection],
    secrets: Mapping[str, str] | None = None,
    *,
    stub_calls: bool = False,
) -> list[Replayed]:
    """Send ``connections`` (HTTP and WebSocket, in order) to ``app`` inside its lifespan;
    with ``stub_calls``, each one's outgoing httpx calls are answered from its recording."""
    secrets = {k.lower(): v for k, v in (secrets or {}).items()}
    spy = Spy(app, address=False, history=max(len(connections) + 8, 64), max_body=64 * 1024 * 1024)
    results: list[Replayed] = []
    with stubbing() if stub_calls else contextlib.nullcontext():
        async with Lifespan(spy) as lifespan:
            await _each(spy, lifespan, connections, secrets, stub_calls, results)
    return results


async def _each(
    spy: Spy,
    lifespan: Lifespan,
    connections: Sequence[Connection],
    secrets: Mapping[str, str],
    stub_calls: bool,
    results: list[Replayed],
) -> None:
    """Replay each connection in turn, recording what the app does now into ``results``."""
    for conn in connections:
        if conn.type not in ("http", "websocket"):
            continue
        scope, missing = _scope(conn, secrets)
        if lifespan.supported:
            scope["state"] = dict(lifespan.state)  # as servers do: the lifespan's state, copied
        before = len(spy.records)
        stubs = Stubs.of(conn)
        try:
            with answering(stubs) if stub_calls else contextlib.nullcontext(stubs):
                await asyncio.wait_for(_drive(spy, scope, conn), TIMEOUT)
            error = None
        except asyncio.TimeoutError:
            error = f"no answer within {TIMEOUT:g} s"
        except Exception as exc:  # the app raised: recorded as its outcome; go on with the rest
            error = None if len(spy.records) > before else f"{type(exc).__name__}: {exc}"
        records = spy.records[before:]
        now = None
        if records:
            doc = records[-1].document(spy.redactor, spy.origin.tag)
            now = session_from_document({"connections": [doc]}).connections[0]
        # Sent without the redacted headers nobody supplied: the caller tells whether the
        # answer shows they were needed.
        results.append(Replayed(conn, now, missing, error, list(stubs.unrecorded)))


def _scope(conn: Connection, secrets: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    scope = dict(conn.scope)
    headers = []
    missing = []
    for name, value in conn.request_headers:
        if value == REDACTED:
            supplied = secrets.get(name.decode("latin-1").lower())
            if supplied is None:
                missing.append(name.decode("latin-1"))
                continue
            value = supplied.encode("latin-1")
        headers.append((name, value))
    scope["headers"] = headers
    # What the server of the recording added for itself has no meaning here.
    for key in ("state", "extensions", "app", "router", "route", "endpoint", "path_params"):
        scope.pop(key, None)
    return scope, missing


async def _drive(app: Any, scope: dict[str, Any], conn: Connection) -> None:
    incoming = [e.message for e in conn.events if e.direction == "receive" and isinstance(e.message, dict)]
    # A client that left before the response was complete leaves again at the same point: after
    # as many messages as the app had sent by then.
    leave_after: int | None = None
    sent_before = 0
    for event in conn.events:
        if event.direction == "send":
            sent_before += 1
        elif event.type == "http.disconnect":
            leave_after = sent_before
            break
    if conn.type == "http":
        incoming = [m for m in incoming if m.get("type") == "http.request"] or [
            {"type": "http.request", "body": b"", "more_body": False}
        ]
    else:
        incoming = [m for m in incoming if m.get("type") != "websocket.disconnect"]
    done = asyncio.Event()
    queue = list(incoming)
    sent = 0
    left = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if queue:
            return dict(queue.pop(0))
        if conn.type == "http":
            # The response is complete, or the client leaves where it left when recorded.
            waits = [asyncio.ensure_future(done.wait()), asyncio.ensure_future(left.wait())]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in waits:
                    waiting.cancel()
            return {"type": "http.disconnect"}
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, Any]) -> None:
        nonlocal sent
        if left.is_set():
            return  # the client has gone: servers drop what is sent after that
        sent += 1
        if leave_after is not None and sent >= leave_after and not done.is_set():
            left.set()
        kind = message.get("type")
        if (kind == "http.response.body" and not message.get("more_body")) or kind == "websocket.close":
            done.set()

    await app(scope, receive, send)
