"""What Spy keeps of one connection, and how that becomes a JSON document.

Two halves with different budgets. ``snapshot_*`` and :class:`ConnectionRecord`'s methods run
on the request path: they take cheap copies of what the app or server could change later
(the dicts, header lists, bytearrays) and nothing more. ``*_document`` functions run off it,
in the sender thread or at export: they redact, decode and shape the record for JSON.
"""

from __future__ import annotations

import os
import time
import traceback
from time import perf_counter
from typing import Any

from asgispy.capture import codec
from asgispy.capture.redact import Redactor
from asgispy.types import Direction, Message, Outcome, Scope

__all__ = ["ConnectionRecord", "RecordedEvent", "event_document", "snapshot_message", "snapshot_scope"]

#: ``(direction, seconds since the connection began, message copy, {field: original size} or None)``
RecordedEvent = tuple[Direction, float, dict[str, Any], "dict[str, int] | None"]

_CAPTURE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_PAYLOAD_FIELDS = ("body", "bytes", "text")
_EVENT_OVERHEAD = 160  # rough bytes of a stored event besides its payload, for the history bound
_SCOPE_OVERHEAD = 1024


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
    for field in _PAYLOAD_FIELDS:
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
    """One connection as Spy saw it. Written by the connection's task, read by the sender."""

    __slots__ = (
        "dropped_events",
        "ended",
        "error",
        "events",
        "handler",
        "history",
        "max_events",
        "notes",
        "outcome",
        "scope",
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
        self.scope = snapshot_scope(scope)
        self.events: list[RecordedEvent] = []
        self.max_events = max_events
        self.dropped_events = 0
        self.ended: float | None = None
        self.outcome: Outcome = "open"
        self.error: traceback.TracebackException | dict[str, str] | None = None
        self.handler: tuple[Any, Any, Any] | None = None
        # Shared and empty until a first note: most connections never get one.
        self.notes: list[str] | tuple[str, ...] = ()
        self.size = _SCOPE_OVERHEAD
        self.history: Any = None  # the History holding this record, told of its growth

    @property
    def id(self) -> str:
        """``<tag>-<seq>``: made when read (off the request path), not for every connection."""
        return f"{self.tag}-{self.seq}"

    def add(self, direction: Direction, message: Message, max_body: int) -> None:
        """Record one message (past ``max_events`` only count it)."""
        events = self.events
        if len(events) >= self.max_events:
            self.dropped_events += 1
            return
        t = perf_counter() - self.t0
        copy = dict(message)
        # Most messages are a bytes body within bounds and nothing else to copy: a few tests
        # settle that, and the rest go the general way.
        body = copy.get("body")
        if (
            type(body) is bytes
            and len(body) <= max_body
            and not ("headers" in copy or "bytes" in copy or "text" in copy)
        ):
            events.append((direction, t, copy, None))
            grown = _EVENT_OVERHEAD + len(body)
        else:
            copy, cut, size = _snapshot_copy(copy, max_body)
            events.append((direction, t, copy, cut))
            grown = _EVENT_OVERHEAD + size
        self.size += grown
        history = self.history
        if history is not None:
            history.used += grown

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

    def document(self, redactor: Redactor, tag: str) -> dict[str, Any]:
        """The JSON form of the record (off the request path)."""
        return {
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


def scope_document(scope: dict[str, Any], redactor: Redactor) -> Any:
    return codec.encode(redactor.message(scope))


def event_document(event: RecordedEvent, redactor: Redactor) -> dict[str, Any]:
    direction, t, message, cut = event
    doc: dict[str, Any] = {"direction": direction, "t": t, "message": codec.encode(redactor.message(message))}
    if cut:
        doc["cut"] = cut
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


def handler_document(handler: tuple[Any, Any, Any] | None) -> dict[str, Any] | None:
    """Which route and endpoint the framework matched (Starlette and FastAPI put them in the scope).

    Never raises: what cannot be read of an odd route object is left out.
    """
    if handler is None:
        return None
    route, endpoint, params = handler
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
