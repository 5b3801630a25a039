"""What Spy keeps of one connection while it runs, and what becomes of it once it has ended.

:class:`ConnectionRecord`'s ``add`` and ``finish`` run on the request path and only copy
(:mod:`asgispy.capture.snapshot`); ``pack``, ``keep`` and ``document`` run off it, in the
sender's thread or at export (:mod:`asgispy.capture.packing`, :mod:`asgispy.capture.documents`).
"""

from __future__ import annotations

import marshal
import time
import traceback
from time import perf_counter
from typing import Any

from asgispy.capture.documents import error_document, event_document, handler_document, scope_document
from asgispy.capture.inside import MAX_INSIDE, InsideOptions, inside_documents, response_done
from asgispy.capture.layers import layers_document
from asgispy.capture.packing import pack_connection
from asgispy.capture.snapshot import RecordedEvent, snapshot_message, snapshot_scope
from asgispy.codec import pack
from asgispy.codec.redact import Redactor
from asgispy.types import Direction, Message, Outcome, Scope

__all__ = ["ConnectionRecord"]


_DIRECTIONS: tuple[Direction, Direction] = ("receive", "send")
_RECORD_OVERHEAD = 200  # the record object itself, besides its buffer
# Measured with tracemalloc on a small connection under uvicorn, kept as objects.
_SCOPE_OVERHEAD = 1500
_EVENT_OVERHEAD = 300
_SIZED = (bytes, bytearray, str)


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
        "inside",
        "inside_options",
        "interventions",
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
        #: what addons, rules and breakpoints did to it (see asgispy.intercept.journal)
        self.interventions: list[dict[str, Any]] | tuple[()] = ()
        #: what the app did inside it (asgispy.inside), and what its Spy records of that
        self.inside: list[dict[str, Any]] | tuple[()] = ()
        self.inside_options: InsideOptions | None = None
        #: scope and events in one marshal buffer, once ended, while nobody streams (see keep)
        self.kept: bytes | None = None
        #: the packed connection (see asgispy.codec.pack), once it has ended and been packed
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

    def intervened(self, entry: dict[str, Any]) -> None:
        """Note what asgispy itself changed (at most 200 entries; more are counted)."""
        kept = self.interventions
        if not isinstance(kept, list):
            self.interventions = kept = []
        if len(kept) < 200:
            kept.append(entry)
        elif len(kept) == 200:
            kept.append({"t": entry.get("t", 0.0), "by": "asgispy", "what": "more interventions, not kept"})

    def did(self, entry: dict[str, Any]) -> None:
        """Note something the app did inside the connection (an outgoing call, a log record, a
        query): at most MAX_INSIDE entries, more are counted in a note."""
        kept = self.inside
        if not isinstance(kept, list):
            self.inside = kept = []
        if len(kept) < MAX_INSIDE:
            kept.append(entry)
        elif len(kept) == MAX_INSIDE:
            kept.append({"kind": "note", "t": entry.get("t", 0.0)})
            self.note(f"more than {MAX_INSIDE} calls, log records and queries: the rest not kept")

    def inside_document(self, redactor: Redactor | None) -> list[dict[str, Any]]:
        """What the app did inside, as JSON entries (masked with ``redactor``)."""
        entries = [e for e in list(self.inside) if e.get("kind") != "note"]
        return inside_documents(entries, redactor, response_done(self.events)) if entries else []

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
        inside = self.inside_document(redactor) if self.inside else []
        if layers is not None or self.interventions or inside:
            end.append(layers)
        if self.interventions or inside:
            end.append(list(self.interventions))
        if inside:
            end.append(inside)
        return end

    def layers_document(self, redactor: Redactor | None) -> list[dict[str, Any]] | None:
        """The layers this connection crossed, as data (layers mode only; see capture.layers)."""
        if self.layers is None:
            return None
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
            if len(end) > 7 and end[7]:
                doc["interventions"] = list(end[7])
            if len(end) > 8 and end[8]:
                doc["inside"] = list(end[8])
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
        if self.interventions:
            doc["interventions"] = list(self.interventions)
        if self.inside:
            doc["inside"] = self.inside_document(redactor)
        return doc
