"""The capture model that every view reads: sessions, connections and their events.

A :class:`Connection` is built from the JSON documents that Spy writes, whether they come
from a session file or one by one over the wire. It keeps those documents, as compact JSON
bytes (so a session can be written again unchanged), and decodes messages only when a view
asks for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from asgispy.capture import codec, pack
from asgispy.store.checker import Checker, Violation
from asgispy.store.streams import StreamRecord, parse_stream, stream_kind
from asgispy.types import PAYLOAD_FIELDS, Direction, Outcome

if TYPE_CHECKING:
    from asgispy.store.layers import Layer

__all__ = ["Connection", "Endpoint", "ErrorInfo", "Event", "ProducerInfo", "Session", "encoded_size"]

#: Connection.add's default: the event's message has not been decoded by the caller.
_UNREAD: Any = object()
_RESPONSE_STARTS = frozenset({"http.response.start", "websocket.http.response.start", "websocket.accept"})
_RESPONSE_BODIES = frozenset({"http.response.body", "websocket.http.response.body"})
_OUTCOMES = frozenset({"open", "completed", "exception", "cancelled", "cut off"})


def encoded_size(doc: Any) -> int:
    """The length of the bytes or str that ``doc`` encodes, without decoding it."""
    if type(doc) is str:
        return len(doc)
    if type(doc) is dict and len(doc) == 1:
        ((tag, text),) = doc.items()
        if type(text) is str:
            if tag == "$bytes":
                return len(text.encode("utf-8"))
            if tag == "$latin1":
                return len(text)
            if tag == "$base64":
                # From the text's length, without decoding a body that may be a megabyte.
                return len(text) // 4 * 3 - text[-2:].count("=")
    return 0


@dataclass(frozen=True)
class ErrorInfo:
    """An exception the app raised: its type name, message and formatted traceback."""

    type: str
    message: str
    traceback: str

    @classmethod
    def from_document(cls, doc: Mapping[str, Any] | None) -> ErrorInfo | None:
        if not doc:
            return None
        return cls(str(doc.get("type", "?")), str(doc.get("message", "")), str(doc.get("traceback", "")))

    def document(self) -> dict[str, str]:
        return {"type": self.type, "message": self.message, "traceback": self.traceback}


@dataclass(frozen=True)
class ProducerInfo:
    """A process that recorded connections: host, pid and app name."""

    tag: str
    host: str = ""
    pid: int = 0
    app: str = ""
    started: float = 0.0

    @classmethod
    def from_document(cls, tag: str, doc: Mapping[str, Any]) -> ProducerInfo:
        return cls(
            tag,
            str(doc.get("host", "")),
            int(doc.get("pid", 0) or 0),
            str(doc.get("app", "")),
            float(doc.get("started", 0.0) or 0.0),
        )

    def document(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.pid, "app": self.app, "started": self.started}


class Event:
    """One message the app received or sent, ``t`` seconds after its connection began.

    The message is kept packed (MessagePack, see :mod:`asgispy.capture.pack`), not as a tree of
    Python objects: a store holding 50,000 connections would otherwise spend most of its memory
    on dicts. What the list and the summaries need (type, payload size, status or close code)
    is read once, up front; the rest is decoded when a view asks.
    """

    __slots__ = (
        "_message",
        "_raw",
        "code",
        "cut",
        "direction",
        "payload_size",
        "status",
        "t",
        "type",
        "wait",
    )

    def __init__(
        self,
        direction: Direction,
        t: float,
        doc: Any,
        cut: dict[str, int] | None = None,
        wait: float | None = None,
    ) -> None:
        self._set(direction, t, codec.decode(doc), cut, None, wait)

    @classmethod
    def from_message(
        cls,
        direction: Direction,
        t: float,
        message: Any,
        cut: dict[str, int] | None,
        packed: bytes | None = None,
        wait: float | None = None,
    ) -> Event:
        """An event from the message itself (bytes as bytes), as the wire brings it; ``packed``
        is the message as the producer packed it, kept as it is when given."""
        event = cls.__new__(cls)
        event._set(direction, t, message, cut, packed, wait)
        return event

    def _set(
        self,
        direction: Direction,
        t: float,
        message: Any,
        cut: dict[str, int] | None,
        packed: bytes | None = None,
        wait: float | None = None,
    ) -> None:
        self.direction: Direction = direction
        self.t = t
        #: seconds the app spent inside the receive() or send() call of this message (None when
        #: not recorded): waiting for the client, or held by the server's backpressure
        self.wait = wait
        self.cut = cut or None
        self._message: Any = None
        if type(message) is dict:
            kind = message.get("type")
            status = message.get("status")
            code = message.get("code")
            self.type: str = kind if type(kind) is str else "?"
            self.status = status if type(status) is int else None
            self.code = code if type(code) is int else None
            size = 0
            for name in PAYLOAD_FIELDS:
                if name in message:
                    size += self._size(message, name)
            self.payload_size = size
        else:
            self.type, self.status, self.code, self.payload_size = "?", None, None, 0
        self._raw = packed if packed is not None else pack.dumps(message)

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Event:
        return cls.decoded(doc)[0]

    @classmethod
    def decoded(cls, doc: Mapping[str, Any]) -> tuple[Event, Any]:
        """The event of a document, and its message as decoded for it (the checker reads it
        without decoding the message a second time)."""
        direction = doc.get("direction")
        if direction not in ("receive", "send"):
            raise ValueError(f"event direction must be 'receive' or 'send', not {direction!r}")
        wait = doc.get("wait")
        message = codec.decode(doc.get("message"))
        event = cls.from_message(
            direction,
            float(doc.get("t", 0.0)),
            message,
            doc.get("cut"),
            None,
            float(wait) if isinstance(wait, (int, float)) and not isinstance(wait, bool) else None,
        )
        return event, message

    @property
    def doc(self) -> Any:
        """The message in its encoded (JSON) form, made readable by the codec."""
        return codec.encode(self.message)

    @property
    def fields(self) -> dict[str, Any]:
        """The message's top-level fields, in their encoded (JSON) form."""
        return _fields(self.doc)

    @property
    def message(self) -> Any:
        """The message as the app saw it (bytes as bytes), decoded on first use."""
        if self._message is None:
            self._message = pack.decode(self._raw)
        return self._message

    def field_size(self, name: str) -> int:
        """The true length of a payload field, counting what was cut."""
        message = self.message
        return self._size(message if type(message) is dict else {}, name)

    def _size(self, fields: dict[str, Any], name: str) -> int:
        cut = self.cut
        if cut and name in cut:
            return int(cut[name])
        value = fields.get(name)
        return len(value) if type(value) is bytes or type(value) is str else 0

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"direction": self.direction, "t": self.t, "message": self.doc}
        if self.cut:
            doc["cut"] = self.cut
        if self.wait is not None:
            doc["wait"] = self.wait
        return doc

    def peek(self) -> Any:
        """The message, decoded without keeping the decoded form (for one look at it)."""
        message = self._message
        return message if message is not None else pack.decode(self._raw)

    def __repr__(self) -> str:
        return f"<Event {self.direction} {self.type} t={self.t:.6f}>"


class Connection:
    """One ASGI connection: its scope, its events in order, and how it ended.

    Like events, the scope is kept as compact JSON and decoded on first use; the method,
    path and query string the list shows are read once, up front.
    """

    __slots__ = (
        "__weakref__",
        "_checker",
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
        self._set_scope(_decoded_scope(scope_doc))
        self._reset()

    def _reset(self) -> None:
        self.events: list[Event] = []
        self.events_dropped = 0
        self.duration: float | None = None
        self.outcome: Outcome = "open"
        self.error: ErrorInfo | None = None
        self.handler: dict[str, Any] | None = None
        self.notes: list[str] = []
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
        #: what broke the ASGI spec's rules, in the order found (see docs/rules.md)
        self.violations: list[Violation] = []
        self._layer_docs: list[Any] | None = None
        self._layers: list[Layer] | None = None  # built on first use
        self._checker: Checker | None = Checker(self.type, self._method)

    def _set_scope(self, scope: dict[str, Any]) -> None:
        self._scope_raw = pack.dumps(scope)
        self._scope: dict[str, Any] | None = None
        method, path, query = scope.get("method"), scope.get("path"), scope.get("query_string")
        self._method = method if type(method) is str else None
        self._path = path if type(path) is str else ""
        self._query = query if type(query) is bytes else b""

    # Building ------------------------------------------------------------------------------

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
            conn.add(Event.from_message(direction, t, message, cut, None, wait), message)
        if end is not None:
            conn.finish(end)
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
            conn.add(*Event.decoded(event_doc))
        conn.finish(doc)
        return conn

    def events_from(self, events: Iterable[Event], messages: list[Any] | None = None) -> None:
        """Append events in order (see :meth:`add`)."""
        for i, event in enumerate(events):
            self.add(event, messages[i] if messages is not None else _UNREAD)

    def add(self, event: Event, message: Any = _UNREAD) -> None:
        """Append an event, keeping the running summaries (status, sizes, timing) current.

        ``message`` is the event's message when the caller has it decoded already (the
        protocol checker reads it; otherwise it is decoded for the checker and not kept).
        """
        self.events.append(event)
        checker = self._checker
        if checker is not None:
            if message is _UNREAD:
                message = event.peek()
            found = checker.feed(len(self.events) - 1, event.direction, message, event.cut)
            if found:
                self.violations.extend(found)
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
                self.handler["path_params"] = codec.decode(self.handler["path_params"])
        self.notes = [str(n) for n in doc.get("notes", ())]
        self.events_dropped = int(doc.get("events_dropped", 0) or 0)
        layers = doc.get("layers")
        if isinstance(layers, list):
            self._layer_docs = layers
            self._layers = None
        checker = self._checker
        if checker is not None and self.outcome != "open":
            if not self.events_dropped:  # with messages missing, an unfinished response may be ours
                self.violations.extend(checker.finish(self.outcome))
            self._checker = None

    def _gap(self, t: float) -> None:
        """The time since the previous response message (or WebSocket frame) is a gap."""
        last = self._last_out
        if last is not None and (self.max_gap is None or t - last > self.max_gap):
            self.max_gap = t - last
        self._last_out = t

    # Reading -------------------------------------------------------------------------------

    @property
    def scope_doc(self) -> Any:
        """The scope in its encoded (JSON) form, made readable by the codec."""
        return codec.encode(self.scope)

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
        return _endpoint(self.scope.get("client"))

    @property
    def server(self) -> Endpoint | None:
        """The scope's ``server`` as (host, port); port None for a Unix socket."""
        return _endpoint(self.scope.get("server"))

    @property
    def request_headers(self) -> list[tuple[bytes, bytes]]:
        return _headers(self.scope.get("headers"))

    @property
    def response_headers(self) -> list[tuple[bytes, bytes]]:
        for event in self.events:
            if event.type in ("http.response.start", "websocket.http.response.start", "websocket.accept"):
                return _headers(event.message.get("headers"))
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
            from asgispy.store.layers import layers_from_document

            self._layers = layers_from_document(self, self._layer_docs) if self._layer_docs else []
        return self._layers

    @property
    def stream_kind(self) -> str | None:
        """``"sse"`` or ``"ndjson"`` when the response is such a stream (by its content type)."""
        if self.type != "http":
            return None
        for name, value in self.response_headers:
            if name.lower() == b"content-type":
                return stream_kind(value)
        return None

    def stream(self) -> list[StreamRecord]:
        """The response as the records of its stream (server-sent events or JSON lines), each
        with the time its last byte was sent; empty when the response is not such a stream."""
        kind = self.stream_kind
        if kind is None:
            return []
        chunks = [
            (e.message.get("body", b"") or b"", e.t)
            for e in self.events
            if e.direction == "send" and e.type == "http.response.body"
        ]
        records = parse_stream(kind, chunks)
        if self.outcome == "open":
            # Still streaming: what is not complete yet is not a record yet.
            records = [r for r in records if not r.incomplete]
        return records

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
            "handler": _handler_document(self.handler),
            "notes": list(self.notes),
            **({"layers": self._layer_docs} if self._layer_docs is not None else {}),
        }

    def __repr__(self) -> str:
        what = f"{self.method} {self.target}" if self.method else self.path or self.type
        return f"<Connection {self.id} {self.type} {what} {self.outcome}>"


@dataclass
class Session:
    """Connections recorded by one or more producers, as loaded from a session file."""

    connections: list[Connection] = field(default_factory=list)
    producers: dict[str, ProducerInfo] = field(default_factory=dict)
    dropped: int = 0
    created: float = 0.0

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Session:
        producers = {
            str(tag): ProducerInfo.from_document(str(tag), info)
            for tag, info in (doc.get("producers") or {}).items()
        }
        connections = [Connection.from_document(c) for c in doc.get("connections", ())]
        return cls(connections, producers, int(doc.get("dropped", 0) or 0), float(doc.get("created", 0) or 0))

    def __iter__(self) -> Iterator[Connection]:
        return iter(self.connections)

    def __len__(self) -> int:
        return len(self.connections)

    def __getitem__(self, id: str) -> Connection:
        for conn in self.connections:
            if conn.id == id:
                return conn
        raise KeyError(id)

    def document(self, connections: Iterable[Connection] | None = None) -> dict[str, Any]:
        """This session (or the given subset of its connections) as a session document."""
        from asgispy.capture.sessionfile import session_document

        chosen = list(self.connections if connections is None else connections)
        tags = {c.producer for c in chosen}
        producers = {t: p.document() for t, p in self.producers.items() if t in tags}
        return session_document([c.document() for c in chosen], producers, self.dropped)


def _decoded_scope(doc: Any) -> dict[str, Any]:
    try:
        scope = codec.decode(doc)
    except ValueError:
        return {}
    return scope if isinstance(scope, dict) else {}


def _fields(doc: Any) -> dict[str, Any]:
    """The top-level fields of an encoded message, still encoded, whatever form it was stored in."""
    if type(doc) is not dict:
        return {}
    if len(doc) == 1 and type(doc.get("$dict")) is list:
        # A message with a key JSON objects cannot hold is stored as [key, value] pairs.
        return {p[0]: p[1] for p in doc["$dict"] if type(p) is list and len(p) == 2 and type(p[0]) is str}
    return doc


class Endpoint(NamedTuple):
    """A scope's ``client`` or ``server``. The spec says a (host, port) pair of str and int; in
    the wild Daphne gives a list and Granian the port as a string (docs/servers.md), so the
    scope keeps what the server gave and views read this instead."""

    host: str
    port: int | None


def _endpoint(value: Any) -> Endpoint | None:
    if not isinstance(value, (tuple, list)) or not value or value[0] is None:
        return None
    port = value[1] if len(value) > 1 else None
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    return Endpoint(str(value[0]), port if type(port) is int else None)


def _int_or_none(value: Any) -> int | None:
    return value if type(value) is int else None


def _headers(value: Any) -> list[tuple[bytes, bytes]]:
    out = []
    for item in value or ():
        try:
            name, val = item
        except (TypeError, ValueError):
            continue
        if isinstance(name, bytes) and isinstance(val, bytes):
            out.append((name, val))
    return out


def _handler_document(handler: dict[str, Any] | None) -> dict[str, Any] | None:
    if handler is None:
        return None
    doc = dict(handler)
    if "path_params" in doc:
        doc["path_params"] = codec.encode(doc["path_params"])
    return doc
