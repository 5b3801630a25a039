"""What Spy keeps of one connection, and how that becomes a JSON document.

Two halves with different budgets. ``snapshot_*`` and :class:`ConnectionRecord`'s methods run
on the request path: they take cheap copies of what the app or server could change later
(the dicts, header lists, bytearrays) and nothing more. ``*_document`` functions run off it,
in the sender thread or at export: they redact, decode and shape the record for JSON.
"""

from __future__ import annotations

import marshal
import os
import time
import traceback
from time import perf_counter
from typing import Any

from asgispy.capture import codec, pack
from asgispy.capture.redact import Redactor
from asgispy.types import PAYLOAD_FIELDS, Direction, Message, Outcome, Scope

__all__ = [
    "ConnectionRecord",
    "RecordedEvent",
    "event_document",
    "pack_connection",
    "pack_event_list",
    "snapshot_message",
    "snapshot_scope",
]

#: ``[direction, t, message copy, {field: original size} or None, wait or None]``: ``t`` is the
#: time since the connection began at which the app got the message (receive) or handed it over
#: (send); ``wait`` how long the app spent inside that ``receive()`` or ``send()`` call (None
#: while a send is still in progress, or when the call raised before it could be timed).
#: A list, so that a send's wait can be filled in once the server returns.
RecordedEvent = list[Any]

_CAPTURE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def snapshot_message(message: Message, max_body: int) -> tuple[dict[str, Any], dict[str, int] | None, int]:
    """Copy ``message`` cheaply; cut payloads over ``max_body``. Returns (copy, cut, payload size)."""
    return _snapshot_copy(dict(message), max_body)


def _snapshot_copy(copy: dict[str, Any], max_body: int) -> tuple[dict[str, Any], dict[str, int] | None, int]:
    # ``in`` before reading: most messages lack most of these keys, and the test is cheaper than ``get``.
    if "headers" in copy:
        headers = copy["headers"]
        if type(headers) is list:
            copy["headers"] = headers.copy()
    cut = None
    size = 0
    for field in PAYLOAD_FIELDS:
        if field not in copy:
            continue
        value = copy[field]
        if value is None:
            continue
        kind = type(value)
        if kind is not bytes and kind is not str:
            if not isinstance(value, (bytearray, memoryview)):
                continue
            full = len(value)
            copy[field] = value = bytes(value[:max_body])
        else:
            full = len(value)
            if full > max_body:
                copy[field] = value = value[:max_body]
        if full > max_body:
            cut = {**(cut or {}), field: full}
        size += len(value)
    return copy, cut, size


def snapshot_scope(scope: Scope) -> dict[str, Any]:
    """Copy the scope and the containers in it that live on after the connection began."""
    copy = dict(scope)
    # Unrolled: this runs once per connection, and most scopes lack one or two of these.
    value = copy.get("headers")
    if type(value) is list or type(value) is dict:
        copy["headers"] = value.copy()
    value = copy.get("state")
    if type(value) is dict or type(value) is list:
        copy["state"] = value.copy()
    value = copy.get("extensions")
    if type(value) is dict or type(value) is list:
        copy["extensions"] = value.copy()
    return copy


class ConnectionRecord:
    """One connection as Spy saw it. Written by the connection's task, read off the request path.

    While the connection runs, its scope copy and its events (``(direction, t, message copy,
    cut)``, appended by Spy's ``receive`` and ``send`` wrappers) are plain Python objects. Once
    it has ended, :meth:`pack` turns it into one MessagePack buffer (secret header values
    masked, and kept aside so that ``scope`` and ``events`` still give what the app saw): a
    finished connection in the history is then one ``bytes``, not a tree of dicts and lists.
    """

    __slots__ = (
        "_events",
        "_scope",
        "dropped_events",
        "ended",
        "error",
        "handler",
        "history_slot",
        "kept",
        "layer_infos",
        "layers",
        "max_events",
        "notes",
        "outcome",
        "packed",
        "secrets",
        "seq",
        "size",
        "started",
        "t0",
        "tag",
        "type",
    )

    def __init__(self, tag: str, seq: int, scope: Scope, max_events: int) -> None:
        self.tag = tag
        self.seq = seq
        self.t0 = perf_counter()
        self.started = time.time()
        kind = scope.get("type", "?")
        self.type: str = kind if type(kind) is str else str(kind)
        self._scope: dict[str, Any] | None = snapshot_scope(scope)
        self._events: list[RecordedEvent] | None = []
        self.max_events = max_events
        self.dropped_events = 0
        self.ended: float | None = None
        self.outcome: Outcome = "open"
        self.error: traceback.TracebackException | dict[str, str] | None = None
        self.handler: tuple[Any, Any, Any] | None = None
        # Shared and empty until a first note: most connections never get one.
        self.notes: list[str] | tuple[str, ...] = ()
        #: scope and events in one marshal buffer, once ended, while nobody streams (see keep)
        self.kept: bytes | None = None
        #: the packed connection (see asgispy.capture.pack), once it has ended and been packed
        self.packed: bytes | None = None
        self.secrets: tuple[pack.Secret, ...] = ()
        self.size = 0  # bytes held once packed; counted by the history
        self.history_slot = False  # whether a history keeps it (and counts its size)
        #: layers mode: what crossed each depth of the middleware stack (see capture.layers)
        self.layers: list[Any] | None = None
        self.layer_infos: list[Any] = []

    @property
    def id(self) -> str:
        """``<tag>-<seq>``: made when read (off the request path), not for every connection."""
        return f"{self.tag}-{self.seq}"

    @property
    def scope(self) -> dict[str, Any]:
        """The scope as the connection began (from the compact form once compacted)."""
        scope = self._scope
        if scope is None:
            return self._unpacked()[0]  # type: ignore[no-any-return]
        return scope

    @property
    def events(self) -> list[RecordedEvent]:
        """Every message kept so far, in order, as the app saw it."""
        events = self._events
        if events is None:
            return self._unpacked()[1]
        return events

    def _unpacked(self) -> tuple[Any, list[RecordedEvent]]:
        kept = self.kept
        if kept is not None:
            return marshal.loads(kept)  # type: ignore[no-any-return]
        assert self.packed is not None
        _, _, _, scope, events, _ = pack.decode(self.packed)
        if self.secrets:
            pack.restore_secrets(scope, events, self.secrets)
        return scope, [[_DIRECTIONS[e[0]], e[1], e[2], e[3], e[4] if len(e) > 4 else None] for e in events]

    def add(self, direction: Direction, message: Message, max_body: int, wait: float | None = None) -> None:
        """Record one message (past ``max_events`` only count it). Spy inlines the same steps,
        timing the receive() or send() call too (``wait``)."""
        events = self._events
        if events is None:
            return
        if len(events) >= self.max_events:
            self.dropped_events += 1
            return
        copy, cut, _ = snapshot_message(message, max_body)
        events.append([direction, perf_counter() - self.t0, copy, cut, wait])

    def finish(self, scope: Scope, exc: BaseException | None, cancelled: bool) -> None:
        """Close the record: outcome, error, and the route the framework matched, if any.

        The outcome is written last, so a reader in another thread (an export, the sender)
        never sees an ended connection without its error or handler.
        """
        ended = perf_counter() - self.t0
        outcome: Outcome = "completed"
        if cancelled:
            outcome = "cancelled"
        elif exc is not None:
            outcome = "exception"
            try:
                # Summarise now, without reading source files, so the frames (and their locals) are freed.
                self.error = traceback.TracebackException(
                    type(exc), exc, exc.__traceback__, lookup_lines=False, compact=True
                )
            except Exception as failure:
                kind = type(exc)
                self.error = {
                    "type": f"{kind.__module__}.{kind.__qualname__}",
                    "message": "",
                    "traceback": "",
                }
                self.note(f"could not summarise the exception: {failure!r}")
        try:
            route, endpoint, params = scope.get("route"), scope.get("endpoint"), scope.get("path_params")
            if route is not None or endpoint is not None or params:
                self.handler = (route, endpoint, dict(params) if isinstance(params, dict) else params)
        except Exception as failure:
            self.note(f"could not read the matched route: {failure!r}")
        self.ended = ended
        self.outcome = outcome

    def note(self, text: str) -> None:
        notes = self.notes
        if not isinstance(notes, list):
            self.notes = [text]
        elif len(notes) < 20:
            notes.append(text)

    # Off the request path ------------------------------------------------------------------

    def end_value(self, redactor: Redactor | None = None) -> list[Any] | None:
        """How the connection ended, as the packed form holds it (None while it runs); in layers
        mode, with what crossed each layer (secrets masked with ``redactor``)."""
        if self.outcome == "open":
            return None
        end: list[Any] = [
            self.outcome,
            self.ended,
            error_document(self.error),
            handler_document(self.handler),
            list(self.notes),
            self.dropped_events,
        ]
        layers = self.layers_document(redactor)
        if layers is not None:
            end.append(layers)
        return end

    def layers_document(self, redactor: Redactor | None) -> list[dict[str, Any]] | None:
        """The layers this connection crossed, as data (layers mode only; see capture.layers)."""
        if self.layers is None:
            return None
        from asgispy.capture.layers import layers_document

        return layers_document(self, self.layer_infos, redactor)

    def estimate(self) -> int:
        """Bytes the ended record holds as objects (its payloads and a flat share per event and
        for the scope): what the history counts for a record it keeps as it was recorded."""
        events = self._events
        if events is None:
            return self.size
        size = _RECORD_OVERHEAD + _SCOPE_OVERHEAD
        for event in events:
            message = event[2]
            payload = message.get("body") or message.get("bytes") or message.get("text")
            size += _EVENT_OVERHEAD + (len(payload) if payload.__class__ in _SIZED else 0)
        return size

    def keep(self) -> bool:
        """Compact the ended record's scope and events into one buffer, in a single C call.

        ``marshal`` keeps exactly Python's data types (bytes, tuples, text with lone
        surrogates, large integers) and never leaves this process: it is what the history holds
        while nobody streams. False (the record stays as it is) when the record holds an object
        that is not data (a pool in ``scope["state"]``, say).
        """
        if self.kept is not None or self.packed is not None:
            return True
        try:
            self.kept = kept = marshal.dumps((self._scope, self._events))
        except ValueError:
            return False
        self.size = len(kept) + _RECORD_OVERHEAD
        self._scope = None
        self._events = None
        return True

    def pack(self, redactor: Redactor | None) -> bytes:
        """Turn the ended record into one buffer (masked), dropping its tree of objects.

        Returns the buffer; afterwards ``scope`` and ``events`` are decoded from it on demand.
        """
        packed = self.packed
        if packed is not None:
            return packed
        end = self.end_value(redactor)
        if end is None:
            raise ValueError("a connection still open cannot be packed whole")
        packed = pack_connection(self, 0, len(self.events), redactor, end, keep_secrets=True)
        self.packed = packed
        self.size = len(packed) + _RECORD_OVERHEAD
        self._scope = None
        self._events = None
        self.kept = None
        self.error = None
        self.handler = None
        return packed

    def document(self, redactor: Redactor, tag: str) -> dict[str, Any]:
        """The JSON form of the record (off the request path)."""
        if self.packed is not None:
            seq, kind, started, scope, events, end = pack.decode(self.packed)
            outcome, duration, error, handler, notes, dropped = end[:6]
            # The packed form is masked with the Spy's redactor already; mask again if this one differs.
            doc = {
                "id": self.id,
                "seq": seq,
                "producer": tag,
                "type": kind,
                "started": started,
                "duration": duration,
                "outcome": outcome,
                "scope": scope_document(scope, redactor),
                "events": [event_document([_DIRECTIONS[e[0]], *e[1:]], redactor) for e in events],
                "events_dropped": dropped,
                "error": error,
                "handler": handler,
                "notes": list(notes),
            }
            if len(end) > 6 and end[6] is not None:
                doc["layers"] = end[6]
            return doc
        doc = {
            "id": self.id,
            "seq": self.seq,
            "producer": tag,
            "type": self.type,
            "started": self.started,
            "duration": self.ended,
            "outcome": self.outcome,
            "scope": scope_document(self.scope, redactor),
            "events": [event_document(e, redactor) for e in list(self.events)],
            "events_dropped": self.dropped_events,
            "error": error_document(self.error),
            "handler": handler_document(self.handler),
            "notes": list(self.notes),
        }
        layers = self.layers_document(redactor)
        if layers is not None:
            doc["layers"] = layers
        return doc


_DIRECTIONS: tuple[Direction, Direction] = ("receive", "send")
_DIRECTION_CODES = {"receive": 0, "send": 1}
_RECORD_OVERHEAD = 200  # the record object itself, besides its buffer
# Measured with tracemalloc on a small connection under uvicorn, kept as objects.
_SCOPE_OVERHEAD = 1500
_EVENT_OVERHEAD = 300
_SIZED = (bytes, bytearray, str)


def pack_events(events: list[RecordedEvent], start: int, stop: int) -> list[list[Any]]:
    """Events ``start:stop`` as the packed form's ``[direction, t, message, cut, wait]`` lists."""
    codes = _DIRECTION_CODES
    return [[codes[e[0]], e[1], e[2], e[3], e[4]] for e in events[start:stop]]


def pack_connection(
    record: ConnectionRecord,
    start: int,
    stop: int,
    redactor: Redactor | None,
    end: list[Any] | None,
    keep_secrets: bool = False,
) -> bytes:
    """The packed connection with events ``start:stop`` (all of them for a whole record)."""
    kind = record.type[:64]  # a scope type is a short word; a longer one is cut, not refused
    try:
        scope, events, secrets = pack.pack_values(
            record.scope, pack_events(record.events, start, stop), redactor
        )
        data = pack.encode([record.seq, kind, record.started, scope, events, end])
    except (OverflowError, UnicodeEncodeError):
        # An integer beyond 64 bits or text with lone surrogates: look at every value.
        scope, events, secrets = pack.pack_values(
            record.scope, pack_events(record.events, start, stop), redactor, careful=True
        )
        value = [record.seq, kind, record.started, scope, events, pack.pack_value(end, True)]
        data = pack.encode(value)
    if keep_secrets:
        record.secrets = tuple(secrets)
    return data


def pack_event_list(events: list[RecordedEvent], start: int, stop: int, redactor: Redactor | None) -> bytes:
    """Events ``start:stop`` of a connection as a packed array (for a connection still open)."""
    try:
        _, packed, _ = pack.pack_values(None, pack_events(events, start, stop), redactor)
        return pack.encode(packed)
    except (OverflowError, UnicodeEncodeError):
        _, packed, _ = pack.pack_values(None, pack_events(events, start, stop), redactor, careful=True)
        return pack.encode(packed)


def scope_document(scope: dict[str, Any], redactor: Redactor) -> Any:
    return codec.encode(redactor.message(scope))


def event_document(event: RecordedEvent, redactor: Redactor) -> dict[str, Any]:
    direction, t, message, cut = event[:4]
    doc: dict[str, Any] = {"direction": direction, "t": t, "message": codec.encode(redactor.message(message))}
    if cut:
        doc["cut"] = cut
    wait = event[4] if len(event) > 4 else None
    if wait is not None:
        doc["wait"] = wait
    return doc


def error_document(error: traceback.TracebackException | dict[str, str] | None) -> dict[str, str] | None:
    if error is None or isinstance(error, dict):
        return error
    name = getattr(error, "exc_type_str", None)  # Python 3.13+
    if name is None:
        exc_type = error.exc_type
        name = f"{exc_type.__module__}.{exc_type.__qualname__}" if exc_type is not None else "?"
    if name.startswith("builtins."):
        name = name[len("builtins.") :]
    # Spy's own frames (its __call__ and the receive/send wrappers) say nothing about the app.
    frames = [f for f in error.stack if not f.filename.startswith(_CAPTURE_DIR)]
    if frames and len(frames) != len(error.stack):
        error.stack = traceback.StackSummary.from_list(frames)
    for frame in error.stack:
        frame.line  # noqa: B018 - reads the source line now that we are off the request path
    return {"type": name, "message": str(error), "traceback": "".join(error.format())}


def _attr(obj: Any, name: str) -> Any:
    # Route and endpoint objects belong to the app; a property of theirs may raise anything.
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def _qualname(obj: Any) -> str | None:
    if obj is None:
        return None
    target = _attr(obj, "__func__") or obj
    module = _attr(target, "__module__")
    name = _attr(target, "__qualname__") or type(target).__qualname__
    return f"{module}.{name}" if isinstance(module, str) else str(name)


_handler_docs: dict[tuple[int, int], tuple[Any, Any, dict[str, Any] | None]] = {}


def handler_document(handler: tuple[Any, Any, Any] | None) -> dict[str, Any] | None:
    """Which route and endpoint the framework matched (Starlette and FastAPI put them in the scope).

    Never raises: what cannot be read of an odd route object is left out. Routes recur from
    one connection to the next, so the document of a route without parameters is remembered
    (by identity, a few thousand at most).
    """
    if handler is None:
        return None
    route, endpoint, params = handler
    if params:
        return _handler_document(route, endpoint, params)
    key = (id(route), id(endpoint))
    known = _handler_docs.get(key)
    if known is not None and known[0] is route and known[1] is endpoint:
        return known[2]
    doc = _handler_document(route, endpoint, params)
    if len(_handler_docs) >= 4096:
        _handler_docs.clear()
    _handler_docs[key] = (route, endpoint, doc)
    return doc


def _handler_document(route: Any, endpoint: Any, params: Any) -> dict[str, Any] | None:
    doc: dict[str, Any] = {}
    path = _attr(route, "path")
    if isinstance(path, str):
        doc["route"] = path
    name = _attr(route, "name")
    if isinstance(name, str):
        doc["name"] = name
    try:
        methods = _attr(route, "methods")
        if methods:
            doc["methods"] = sorted(str(m) for m in methods)
    except Exception:
        pass
    if endpoint is None:
        endpoint = _attr(route, "endpoint")
    if endpoint is not None:
        doc["endpoint"] = _qualname(endpoint)
    if params:
        doc["path_params"] = codec.encode(params)
    return doc or None
