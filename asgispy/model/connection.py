"""One ASGI connection as recorded: its scope, its events in order, how it ended, and its timing.

A :class:`Connection` is built from the JSON documents Spy writes (a session file) or from the
values the wire brings, one message at a time. It keeps running summaries a list can show
without decoding anything (status, sizes, time to first byte, gaps, time blocked); what is
worked out from it rather than recorded in it is :mod:`asgispy.analysis`'s, which fills
``violations`` and each layer's ``changes`` where connections are built (:mod:`asgispy.store`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from asgispy.codec import jsonform, pack
from asgispy.model.event import Event
from asgispy.model.holds import app_time, held_seconds
from asgispy.model.inside import Inside, inside_from_document
from asgispy.model.layers import Layer, layers_from_document
from asgispy.model.parts import (
    Endpoint,
    ErrorInfo,
    endpoint,
    first_header,
    handler_document,
    header_pairs,
    scope_from_document,
)
from asgispy.types import Direction, Outcome

if TYPE_CHECKING:
    from asgispy.analysis.checker import Violation

__all__ = ["RESENT_HEADER", "Connection"]

#: the header a request sent again from a viewer carries: the id of the connection it copies
RESENT_HEADER = "x-asgispy-resent-from"

_RESPONSE_STARTS = frozenset({"http.response.start", "websocket.http.response.start", "websocket.accept"})
_RESPONSE_BODIES = frozenset({"http.response.body", "websocket.http.response.body"})
_OUTCOMES = frozenset({"open", "completed", "exception", "cancelled", "cut off"})


class Connection:
    """One ASGI connection: its scope, its events in order, and how it ended.

    Like events, the scope is kept as compact JSON and decoded on first use; the method,
    path and query string the list shows are read once, up front.
    """

    __slots__ = (
        "__weakref__",
        "_inside",
        "_inside_docs",
        "_last_out",
        "_layer_docs",
        "_layers",
        "_method",
        "_path",
        "_query",
        "_scope",
        "_scope_raw",
        "blocked",
        "close_code",
        "duration",
        "error",
        "events",
        "events_dropped",
        "first_byte",
        "handler",
        "id",
        "interventions",
        "last_byte",
        "max_gap",
        "notes",
        "outcome",
        "producer",
        "request_bytes",
        "response_bytes",
        "seq",
        "started",
        "status",
        "ttfb",
        "type",
        "violations",
        "waited",
    )

    def __init__(
        self,
        id: str,
        type: str,
        scope_doc: Any,
        *,
        seq: int = 0,
        producer: str = "",
        started: float = 0.0,
    ) -> None:
        self.id = id
        self.type = type
        self.seq = seq
        self.producer = producer
        self.started = started
        self._set_scope(scope_from_document(scope_doc))
        self._reset()

    def _reset(self) -> None:
        self.events: list[Event] = []
        self.events_dropped = 0
        self.duration: float | None = None
        self.outcome: Outcome = "open"
        self.error: ErrorInfo | None = None
        self.handler: dict[str, Any] | None = None
        self.notes: list[str] = []
        #: what asgispy's addons and rules did to it, in time order (see docs/intercept.md)
        self.interventions: list[dict[str, Any]] = []
        self.status: int | None = None
        self.request_bytes = 0
        self.response_bytes = 0
        self.close_code: int | None = None
        # Timing, in seconds since the connection began (None until known; see add()).
        self.ttfb: float | None = None
        self.first_byte: float | None = None
        self.last_byte: float | None = None
        self.max_gap: float | None = None
        self.blocked: float | None = None
        self.waited: float | None = None
        self._last_out: float | None = None
        #: what broke the ASGI spec's rules, in the order found (see docs/rules.md): filled by
        #: the protocol checker where connections are built (asgispy.analysis.judge)
        self.violations: list[Violation] = []
        self._layer_docs: list[Any] | None = None
        self._layers: list[Layer] | None = None  # built on first use
        #: what the app did inside it (``Spy(app, inside=True)``), as recorded; read on first use
        self._inside_docs: list[dict[str, Any]] = []
        self._inside: list[Inside] | None = None

    def _set_scope(self, scope: dict[str, Any], packed: bool = True) -> None:
        """Keep the scope packed (a recording), or as it is, by reference (a passing view)."""
        self._scope_raw = pack.dumps(scope) if packed else b""
        self._scope: dict[str, Any] | None = None if packed else scope
        method, path, query = scope.get("method"), scope.get("path"), scope.get("query_string")
        self._method = method if type(method) is str else None
        self._path = path if type(path) is str else ""
        self._query = query if type(query) is bytes else b""

    @classmethod
    def from_values(
        cls,
        id: str,
        type: str,
        scope: Any,
        events: Iterable[tuple[Direction, float, Any, dict[str, int] | None, float | None]],
        end: Mapping[str, Any] | None,
        *,
        seq: int = 0,
        producer: str = "",
        started: float = 0.0,
    ) -> Connection:
        """A connection from decoded values (bytes as bytes), as the wire brings it."""
        conn = cls.__new__(cls)
        conn.id, conn.type, conn.seq, conn.producer, conn.started = id, type, seq, producer, started
        conn._set_scope(scope if isinstance(scope, dict) else {})
        conn._reset()
        for direction, t, message, cut, wait in events:
            conn.add(Event.from_message(direction, t, message, cut, None, wait))
        if end is not None:
            conn.finish(end)
        return conn

    @classmethod
    def viewing(cls, kind: str, scope: Mapping[str, Any]) -> Connection:
        """A connection over ``scope`` as it is, kept by reference and never packed: what a rule's
        or breakpoint's filter reads while a request begins, at a fraction of a recording's cost."""
        conn = cls.__new__(cls)
        conn.id, conn.type, conn.seq, conn.producer, conn.started = "", kind, 0, "", 0.0
        conn._set_scope(scope if isinstance(scope, dict) else dict(scope), packed=False)
        conn._reset()
        return conn

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Connection:
        try:
            conn = cls(
                str(doc["id"]),
                str(doc["type"]),
                doc.get("scope", {}),
                seq=int(doc.get("seq", 0) or 0),
                producer=str(doc.get("producer", "")),
                started=float(doc.get("started", 0.0) or 0.0),
            )
        except KeyError as exc:
            raise ValueError(f"connection document without {exc.args[0]!r}") from exc
        for event_doc in doc.get("events", ()):
            conn.add(Event.from_document(event_doc))
        conn.finish(doc)
        return conn

    def add(self, event: Event) -> None:
        """Append an event, keeping the running summaries (status, sizes, timing) current."""
        self.events.append(event)
        kind = event.type
        t = event.t
        wait = event.wait
        if event.direction == "receive":
            # Waiting counts while the app waits for the client's data; a task that listens
            # for the disconnect (Starlette's streaming responses do) waits by design.
            if kind == "http.request":
                self.request_bytes += event.payload_size
                if wait is not None:
                    self.waited = (self.waited or 0.0) + wait
            elif kind == "websocket.receive":
                self.request_bytes += event.payload_size
                if wait is not None:
                    self.waited = (self.waited or 0.0) + wait
                self._gap(t)
            elif kind == "websocket.disconnect" and self.close_code is None:
                self.close_code = event.code
        else:
            if wait is not None:
                self.blocked = (self.blocked or 0.0) + wait
            if kind in _RESPONSE_STARTS:
                if self.ttfb is None:
                    self.ttfb = t
                    self._last_out = t
                self.status = 101 if kind == "websocket.accept" else event.status
            elif kind in _RESPONSE_BODIES or kind == "websocket.send":
                self.response_bytes += event.payload_size
                if event.payload_size and self.first_byte is None:
                    self.first_byte = t
                # When the server took it: the app's send() returned.
                self.last_byte = t + (wait or 0.0)
                self._gap(t)
            elif kind == "websocket.close":
                self.close_code = 1000 if event.code is None else event.code
                if self.status is None:
                    self.status = 403  # closed before accept: the server answers 403

    def finish(self, doc: Mapping[str, Any]) -> None:
        """Apply how the connection ended (the end of a document, or a close frame)."""
        outcome = doc.get("outcome", "open")
        self.outcome = outcome if outcome in _OUTCOMES else "open"
        duration = doc.get("duration")
        self.duration = float(duration) if duration is not None else None
        self.error = ErrorInfo.from_document(doc.get("error"))
        handler = doc.get("handler")
        if handler:
            self.handler = dict(handler)
            if "path_params" in self.handler:
                self.handler["path_params"] = jsonform.decode(self.handler["path_params"])
        self.notes = [str(n) for n in doc.get("notes", ())]
        self.interventions = [dict(i) for i in doc.get("interventions", ()) or () if isinstance(i, Mapping)]
        self.events_dropped = int(doc.get("events_dropped", 0) or 0)
        layers = doc.get("layers")
        if isinstance(layers, list):
            self._layer_docs = layers
            self._layers = None
        inside = doc.get("inside")
        if isinstance(inside, list):
            self._inside_docs = [dict(i) for i in inside if isinstance(i, Mapping)]
            self._inside = None

    def _gap(self, t: float) -> None:
        """The time since the previous response message (or WebSocket frame) is a gap."""
        last = self._last_out
        if last is not None and (self.max_gap is None or t - last > self.max_gap):
            self.max_gap = t - last
        self._last_out = t

    @property
    def scope_doc(self) -> Any:
        """The scope in its encoded (JSON) form, made readable by the codec."""
        return jsonform.encode(self.scope)

    @property
    def scope(self) -> dict[str, Any]:
        """The scope as the connection began (bytes as bytes), decoded on first use."""
        if self._scope is None:
            scope = pack.decode(self._scope_raw)
            self._scope = scope if isinstance(scope, dict) else {}
        return self._scope

    @property
    def method(self) -> str | None:
        return self._method

    @property
    def path(self) -> str:
        return self._path

    @property
    def query_string(self) -> bytes:
        return self._query

    @property
    def target(self) -> str:
        """Path and query as a client would write them."""
        query = self.query_string
        return f"{self.path}?{query.decode('latin-1')}" if query else self.path

    @property
    def route(self) -> str | None:
        return self.handler.get("route") if self.handler else None

    @property
    def client(self) -> Endpoint | None:
        """The scope's ``client`` as (host, port), whatever shape the server gave it."""
        return endpoint(self.scope.get("client"))

    @property
    def server(self) -> Endpoint | None:
        """The scope's ``server`` as (host, port); port None for a Unix socket."""
        return endpoint(self.scope.get("server"))

    @property
    def request_headers(self) -> list[tuple[bytes, bytes]]:
        return header_pairs(self.scope.get("headers"))

    @property
    def held(self) -> float:
        """Seconds asgispy held this connection at breakpoints, while the app did nothing."""
        return held_seconds(self.interventions)

    def app_time(self, t: float | None) -> float | None:
        """``t`` (seconds since the start) less the holds that had ended by then: the app's share."""
        return app_time(self.interventions, t)

    @property
    def resent_from(self) -> str | None:
        """The id of the connection this one was sent again from (by a viewer), if it was."""
        return first_header(self.request_headers, RESENT_HEADER.encode())

    @property
    def response_headers(self) -> list[tuple[bytes, bytes]]:
        for event in self.events:
            if event.type in ("http.response.start", "websocket.http.response.start", "websocket.accept"):
                return header_pairs(event.message.get("headers"))
        return []

    def request_body(self) -> bytes:
        """The request body the app read, joined (cut where the recording cut it)."""
        return b"".join(
            e.message.get("body", b"") or b""
            for e in self.events
            if e.direction == "receive" and e.type == "http.request"
        )

    def response_body(self) -> bytes:
        return b"".join(
            e.message.get("body", b"") or b""
            for e in self.events
            if e.direction == "send" and e.type == "http.response.body"
        )

    @property
    def layers(self) -> list[Layer]:
        """The middleware layers this connection crossed, outermost first (recorded with
        ``Spy(app, layers=True)``; empty otherwise). Built on first use."""
        if self._layers is None:
            self._layers = layers_from_document(self, self._layer_docs) if self._layer_docs else []
        return self._layers

    @property
    def inside(self) -> list[Inside]:
        """What the app did while serving it (outgoing HTTP calls, log records, SQL), in time
        order (recorded with ``Spy(app, inside=True)``; empty otherwise)."""
        if self._inside is None:
            found = (inside_from_document(doc) for doc in self._inside_docs)
            self._inside = sorted((i for i in found if i is not None), key=lambda i: i.t)
        return self._inside

    @property
    def body_cut(self) -> bool:
        return any(e.cut for e in self.events)

    def document(self) -> dict[str, Any]:
        """The connection as a JSON document, as Spy wrote it."""
        return {
            "id": self.id,
            "seq": self.seq,
            "producer": self.producer,
            "type": self.type,
            "started": self.started,
            "duration": self.duration,
            "outcome": self.outcome,
            "scope": self.scope_doc,
            "events": [e.document() for e in self.events],
            "events_dropped": self.events_dropped,
            "error": self.error.document() if self.error else None,
            "handler": handler_document(self.handler),
            "notes": list(self.notes),
            **({"layers": self._layer_docs} if self._layer_docs is not None else {}),
            **({"interventions": [dict(i) for i in self.interventions]} if self.interventions else {}),
            **({"inside": [dict(i) for i in self._inside_docs]} if self._inside_docs else {}),
        }

    def __repr__(self) -> str:
        what = f"{self.method} {self.target}" if self.method else self.path or self.type
        return f"<Connection {self.id} {self.type} {what} {self.outcome}>"
