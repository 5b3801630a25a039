"""Breakpoints: a matching connection waits (that connection only) until a viewer resumes it,
edited or not, answers it, or drops it; after a timeout, or when the viewer goes away, it
resumes unchanged.

A breakpoint is a filter expression and a phase: ``request`` (before the app sees the
request: method, path, query, headers and body can be edited) or ``response`` (before the
client gets the response: status, headers and body; a streamed response is held at its start
only, so it is never held for ever). Both are hooks of one built-in addon, so they run after
the user's addons and share their handling of bodies and streams.

Decisions may come from any thread (the producer's, reading a viewer's control frames): they
are handed to the held connection's own event loop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from asgispy.codec.redact import REDACTED_TEXT, Redactor
from asgispy.filter.grammar import Filter, parse
from asgispy.intercept.addons import Addon
from asgispy.intercept.exchange import Exchange, Request, Response, as_bytes
from asgispy.intercept.headers import Headers
from asgispy.intercept.journal import Journal
from asgispy.model.connection import Connection

__all__ = ["DEFAULT_TIMEOUT", "DROPPED_STATUS", "Breakpoint", "Breakpoints", "Decision", "Held"]

#: seconds a held connection waits for a decision before it resumes unchanged
DEFAULT_TIMEOUT = 120.0
#: what the client gets for a dropped connection: the gateway (asgispy) gave no answer
DROPPED_STATUS = 502
DROPPED_BODY = b"asgispy: dropped at a breakpoint\n"
PHASES = ("request", "response")
_DROPPED = "asgispy.dropped"


@dataclass(frozen=True)
class Breakpoint:
    id: int
    expression: str
    phase: str
    filter: Filter | None

    def matches(self, conn: Connection | None) -> bool:
        return self.filter is None or (conn is not None and self.filter(conn))

    def document(self) -> dict[str, Any]:
        return {"id": self.id, "expression": self.expression, "phase": self.phase}


@dataclass
class Decision:
    """What a viewer decided for a held connection: ``resume`` (with ``edits``), ``answer``
    (``edits`` hold the response) or ``drop``; ``timeout`` and ``released`` resume unchanged."""

    action: str
    edits: dict[str, Any] = field(default_factory=dict)


def _body_of(edits: dict[str, Any]) -> bytes | None:
    if "body_base64" in edits:
        return base64.b64decode(str(edits["body_base64"]))
    if "json" in edits:
        import orjson

        return orjson.dumps(edits["json"])
    if "body" in edits:
        return as_bytes(edits["body"])
    return None


MASKED = REDACTED_TEXT


def _headers_of(value: Any, original: Headers) -> Headers:
    """Edited headers; a value left masked (``[redacted]``) keeps the real one it stood for."""
    pairs = value.items() if isinstance(value, dict) else value
    real: dict[str, list[str]] = {}
    for name, kept in original.fields():
        real.setdefault(name.lower(), []).append(kept)
    out = []
    for name, text in pairs:
        name, text = str(name), str(text)
        if text == MASKED and real.get(name.lower()):
            text = real[name.lower()].pop(0)
        out.append((name, text))
    headers = Headers(out)
    headers.changed = True
    return headers


def _masked(headers: Headers, redactor: Redactor | None) -> list[list[str]]:
    def secret(name: str) -> bool:
        return redactor is not None and redactor.is_secret(name.lower().encode("latin-1", "replace"))

    return [[name, MASKED if secret(name) else value] for name, value in headers.fields()]


def apply_request(request: Request, edits: dict[str, Any]) -> None:
    """Put a viewer's edits (``method``, ``path``, ``query``, ``headers``, ``body``) on the request."""
    if "method" in edits:
        request.method = str(edits["method"]).upper()
    if "path" in edits:
        request.path = str(edits["path"])
    if "query" in edits:
        request.query = str(edits["query"]).lstrip("?")
    if "headers" in edits:
        request.headers = _headers_of(edits["headers"], request.headers)
    body = _body_of(edits)
    if body is not None:
        request.body = body


def response_of(edits: dict[str, Any], base: Response | None = None) -> Response:
    """A response from a viewer's edits (``status``, ``headers``, ``body``), over ``base``."""
    response = base.copy() if base is not None else Response(200, Headers(), b"")
    if "status" in edits:
        response.status = int(edits["status"])
    if "headers" in edits:
        response.headers = _headers_of(edits["headers"], response.headers)
    body = _body_of(edits)
    if body is not None and not response.streaming:
        response.body = body
    return response


def _text(body: bytes | None) -> dict[str, Any]:
    if body is None:
        return {}
    try:
        return {"body": body.decode("utf-8")}
    except UnicodeDecodeError:
        return {"body_base64": base64.b64encode(body).decode("ascii")}


class Held:
    """One connection waiting at a breakpoint."""

    def __init__(self, conn_id: str, point: Breakpoint, exchange: Exchange) -> None:
        self.id = conn_id
        self.point = point
        self.exchange = exchange
        self.since = time.time()
        self._loop = asyncio.get_running_loop()
        self._future: asyncio.Future[Decision] = self._loop.create_future()

    @property
    def phase(self) -> str:
        return self.point.phase

    def decide(self, decision: Decision) -> None:
        """Hand the decision to the held connection (from any thread; the first one counts)."""

        def settle() -> None:
            if not self._future.done():
                self._future.set_result(decision)

        with contextlib.suppress(RuntimeError):  # a closed loop: the connection is gone already
            self._loop.call_soon_threadsafe(settle)

    def document(self, redactor: Redactor | None = None) -> dict[str, Any]:
        """What a viewer is shown and edits: the request, and for the response phase the
        response; secret header values masked with ``redactor`` (an edit that leaves one masked
        keeps its real value)."""
        request = self.exchange.request
        doc: dict[str, Any] = {
            "id": self.id,
            "phase": self.phase,
            "breakpoint": self.point.document(),
            "since": self.since,
            "request": {
                "method": request.method,
                "path": request.path,
                "query": request.query,
                "headers": _masked(request.headers, redactor),
                **_text(request._body),
            },
        }
        response = self.exchange.response
        if self.phase == "response" and response is not None:
            doc["response"] = {
                "status": response.status,
                "headers": _masked(response.headers, redactor),
                "streaming": response.streaming,
                **_text(response.body),
            }
        return doc


Watcher = Callable[[str, "Held"], None]


class Breakpoints:
    """The breakpoints of one app and the connections held at them."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout
        self.points: list[Breakpoint] = []
        self.held: dict[str, Held] = {}
        #: told of each connection held ("held") and let go ("released"), from its event loop
        self.watchers: list[Watcher] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self.points)

    def add(self, expression: str, phase: str = "request") -> Breakpoint:
        """A new breakpoint (a bad expression raises FilterError, a bad phase ValueError)."""
        if phase not in PHASES:
            raise ValueError(f"a breakpoint's phase is request or response, not {phase!r}")
        text = expression.strip()
        point = Breakpoint(next(self._ids), text, phase, parse(text) if text else None)
        with self._lock:
            self.points = [*self.points, point]
        return point

    def remove(self, point_id: int) -> bool:
        with self._lock:
            kept = [p for p in self.points if p.id != point_id]
            removed = len(kept) != len(self.points)
            self.points = kept
        return removed

    def clear(self) -> None:
        with self._lock:
            self.points = []

    def first(self, conn: Connection | None, phase: str) -> Breakpoint | None:
        for point in self.points:
            if point.phase == phase and point.matches(conn):
                return point
        return None

    def decide(self, conn_id: str, decision: Decision) -> bool:
        held = self.held.get(conn_id)
        if held is None:
            return False
        held.decide(decision)
        return True

    def release_all(self) -> int:
        """Resume every held connection unchanged (the viewer went away)."""
        held = list(self.held.values())
        for item in held:
            item.decide(Decision("released"))
        return len(held)

    def _tell(self, what: str, held: Held) -> None:
        for watcher in list(self.watchers):
            with contextlib.suppress(Exception):  # a viewer's problem never reaches the app
                watcher(what, held)

    async def wait(self, held: Held) -> Decision:
        """Hold until a decision or the timeout (then: resume unchanged)."""
        self.held[held.id] = held
        self._tell("held", held)
        try:
            return await asyncio.wait_for(asyncio.shield(held._future), self.timeout)
        except asyncio.TimeoutError:
            return Decision("timeout")
        finally:
            self.held.pop(held.id, None)
            self._tell("released", held)


def _described(decision: Decision, waited: float) -> str:
    words = {
        "resume": "resumed" + (" with edits" if decision.edits else " unchanged"),
        "answer": "answered by the viewer",
        "drop": "dropped",
        "timeout": "resumed unchanged after the timeout",
        "released": "resumed unchanged: the viewer went away",
        "unset": "resumed unchanged: its breakpoint was removed",
    }
    return f"held {waited:.1f}s at a breakpoint; {words.get(decision.action, decision.action)}"


def breakpoint_addon(
    points: Breakpoints, conn_id: Callable[[], str], view: Callable[[Exchange], Connection]
) -> Addon:
    """The built-in addon that holds matching connections (``view`` gives what a response
    breakpoint's filter reads: the request and, once known, the response's start)."""

    async def request(exchange: Exchange) -> None:
        point = points.first(view(exchange), "request")
        if point is None:
            return
        decision, waited = await _hold(points, conn_id(), point, exchange)
        journal = Journal()
        journal.add("breakpoint", _described(decision, waited), held=waited)
        if decision.action == "resume":
            apply_request(exchange.request, decision.edits)
        elif decision.action == "answer":
            response = response_of(decision.edits)
            exchange.respond(response.status, response.headers, response.body or b"")
        elif decision.action == "drop":
            exchange.respond(DROPPED_STATUS, {"content-type": "text/plain"}, DROPPED_BODY)

    async def response(exchange: Exchange) -> None:
        point = points.first(view(exchange), "response")
        if point is None or exchange.response is None:
            return
        decision, waited = await _hold(points, conn_id(), point, exchange)
        Journal().add("breakpoint", _described(decision, waited), held=waited)
        if decision.action in ("resume", "answer"):
            exchange.response = response_of(decision.edits, exchange.response)
        elif decision.action == "drop":
            streaming = exchange.response.streaming
            exchange.response = Response(
                DROPPED_STATUS, Headers([("content-type", "text/plain")]), DROPPED_BODY, streaming=streaming
            )
            exchange.response.headers.changed = True
            exchange.state[_DROPPED] = streaming

    def response_chunk(exchange: Exchange, chunk: bytes) -> bytes | None:
        return None if exchange.state.get(_DROPPED) else chunk  # a dropped stream sends nothing more

    hooks: dict[str, Callable[..., Any]] = {
        "request": request,
        "response": response,
        "response_chunk": response_chunk,
    }
    return Addon(name="breakpoint", hooks=hooks, reads_body=True)


async def _hold(
    points: Breakpoints, conn_id: str, point: Breakpoint, exchange: Exchange
) -> tuple[Decision, float]:
    started = time.monotonic()
    decision = await points.wait(Held(conn_id, point, exchange))
    return decision, time.monotonic() - started
