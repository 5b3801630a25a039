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
from asgispy.capture.snapshot import STRIDE, RecordedEvent, snapshot_message, snapshot_scope, unflatten
from asgispy.codec import pack
from asgispy.codec.redact import Redactor
from asgispy.types import Direction, Message, Outcome, Scope

__all__ = ["ConnectionRecord"]


_DIRECTIONS: tuple[Direction, Direction] = ("receive", "send")
_RECORD_OVERHEAD = 200  # the record object itself, besides its buffer
# Measured with tracemalloc on a small connection under uvicorn, kept as objects.
_SCOPE_OVERHEAD = 1500
_EVENT_OVERHEAD = 300
_FIXED_OVERHEAD = _RECORD_OVERHEAD + _SCOPE_OVERHEAD
_SIZED = (bytes, bytearray, str)


class ConnectionRecord:
    """One connection as Spy saw it. Written by the connection's task, read off the request path.

    While the connection runs, its scope copy and its events (``(direction, t, message copy,
    cut)``, appended by Spy's ``receive`` and ``send`` wrappers) are plain Python objects. Once
    it has ended, :meth:`pack` turns it into one MessagePack buffer (secret header values
    masked, and kept aside so that ``scope`` and ``events`` still give what the app saw): a
    finished connection in the history is then one ``bytes``, not a tree of dicts and lists.
    """

    # What every connection sets is a slot, written once in __init__; what few connections ever
    # set (an error, notes, interventions, layers...) is a class default, shadowed in the
    # instance's own dict when written: a small request pays for a dozen stores, not two dozen.
    __slots__ = (
        "__dict__",
        "_flat",
        "_scope",
        "ended",
        "handler",
        "history_slot",
        "outcome",
        "seq",
        "size",
        "started",
        "t0",
        "tag",
        "type",
    )

    #: messages kept at most (past it they are counted in ``dropped_events``); Spy sets its own
    max_events = 10_000
    dropped_events = 0
    error: traceback.TracebackException | dict[str, str] | None = None
    # Shared and empty until a first note: most connections never get one.
    notes: list[str] | tuple[str, ...] = ()
    #: what addons, rules and breakpoints did to it (see asgispy.intercept.journal)
    interventions: list[dict[str, Any]] | tuple[()] = ()
    #: what the app did inside it (asgispy.inside), and what its Spy records of that
    inside: list[dict[str, Any]] | tuple[()] = ()
    inside_options: InsideOptions | None = None
    secrets: tuple[pack.Secret, ...] = ()
    #: layers mode: what crossed each depth of the middleware stack (see capture.layers)
    layers: list[Any] | None = None
    layer_infos: list[Any] | tuple[()] = ()
    #: scope and events in one marshal buffer, once ended, while nobody streams (see keep)
    kept: bytes | None = None
    #: the packed connection (see asgispy.codec.pack), once it has ended and been packed
    packed: bytes | None = None
    #: whether its sends are timed to their end (Spy's time_sends): a last send may lack its wait
    times_sends = False

    def __init__(self, tag: str, seq: int, scope: Scope, max_events: int | None = None) -> None:
        self.tag = tag
        self.seq = seq
        self.t0 = perf_counter()
        self.started = time.time()
        # Made text where it is read: a scope is the app's to get wrong.
        self.type: str = scope.get("type", "?")
        self._scope: dict[str, Any] | None = snapshot_scope(scope)
        #: the events, flat: STRIDE items each (see events); None once compacted or packed
        self._flat: list[Any] | None = []
        if max_events is not None:
            self.max_events = max_events
        self.ended: float | None = None
        self.outcome: Outcome = "open"
        #: the route, endpoint and path parameters the framework left in the scope, as they were
        self.handler: tuple[Any, Any, Any] | None = None
        self.size = 0  # bytes held once packed (or estimated); counted by the history
        self.history_slot = False  # whether a history keeps it (and counts its size)

    @property
    def kind(self) -> str:
        """The scope's type as text (kept as the app gave it, made text where it is read)."""
        kind = self.type
        return kind if type(kind) is str else str(kind)

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
        """Every message kept so far, in order, as the app saw it (a new list at each read).

        While the record is objects, its events are one flat list, ``STRIDE`` items per event:
        the items of a list are no objects of their own for the garbage collector to walk,
        where a tuple per event (holding a dict, it stays tracked) made every collection walk
        each message the history keeps."""
        flat = self._flat
        if flat is None:
            return self._unpacked()[1]
        return unflatten(flat)

    def count(self) -> int:
        """How many events are kept so far."""
        flat = self._flat
        return len(flat) // STRIDE if flat is not None else len(self.events)

    def events_between(self, start: int, stop: int) -> list[RecordedEvent]:
        """Events ``start:stop`` (what a follower sends next), without rebuilding the rest."""
        flat = self._flat
        if flat is None:
            return self.events[start:stop]
        return unflatten(flat[start * STRIDE : stop * STRIDE])

    def _unpacked(self) -> tuple[Any, list[RecordedEvent]]:
        kept = self.kept
        if kept is not None:
            scope, flat = marshal.loads(kept)
            return scope, unflatten(flat)
        assert self.packed is not None
        _, _, _, scope, events, _ = pack.decode(self.packed)
        if self.secrets:
            pack.restore_secrets(scope, events, self.secrets)
        return scope, [[_DIRECTIONS[e[0]], e[1], e[2], e[3], e[4] if len(e) > 4 else None] for e in events]

    def add(self, direction: Direction, message: Message, max_body: int, wait: float | None = None) -> None:
        """Record one message now (past ``max_events`` only count it), the general way; Spy
        settles most messages with a quicker test first."""
        self.general(direction, message, perf_counter(), wait, max_body)

    def general(
        self, direction: Direction, message: Message, now: float, wait: float | None, max_body: int
    ) -> int:
        """Record a message Spy's quick test did not settle (headers to copy, a payload that is
        not bytes or over ``max_body``, past ``max_events``, not a dict). Returns the payload's
        bytes kept. Never raises: what it cannot record, it notes."""
        flat = self._flat
        try:
            if flat is None:
                return 0
            if len(flat) >= self.max_events * STRIDE:
                self.dropped_events += 1
                return 0
            copy, cut, size = snapshot_message(message, max_body)
            flat.extend((direction, now - self.t0, copy, cut, wait))
            return size
        except Exception as exc:
            self.note(
                f"could not record a {'received' if direction == 'receive' else 'sent'} message: {exc!r}"
            )
            return 0

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
            self._summarise(exc)
        try:
            # As they are: checked and copied where read (documents.handler_document).
            get = scope.get
            self.handler = (get("route"), get("endpoint"), get("path_params"))
        except Exception as failure:
            self.note(f"could not read the matched route: {failure!r}")
        self.ended = ended
        self.outcome = outcome

    def _summarise(self, exc: BaseException) -> None:
        try:
            # Summarise now, without reading source files, so the frames (and their locals) are freed.
            self.error = traceback.TracebackException(
                type(exc), exc, exc.__traceback__, lookup_lines=False, compact=True
            )
        except Exception as failure:
            kind = type(exc)
            self.error = {"type": f"{kind.__module__}.{kind.__qualname__}", "message": "", "traceback": ""}
            self.note(f"could not summarise the exception: {failure!r}")

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
        return layers_document(self, list(self.layer_infos), redactor)

    def estimate(self, payload: int | None = None) -> int:
        """Bytes the ended record holds as objects (its payloads and a flat share per event and
        for the scope): what the history counts for a record it keeps as it was recorded.
        ``payload``, the payloads' bytes if Spy counted them as they came, spares the walk."""
        flat = self._flat
        if flat is None:
            return self.size
        if payload is not None:
            return _FIXED_OVERHEAD + _EVENT_OVERHEAD * (len(flat) // STRIDE) + payload
        size = _RECORD_OVERHEAD + _SCOPE_OVERHEAD
        for event in unflatten(flat):
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
            self.kept = kept = marshal.dumps((self._scope, self._flat))
        except ValueError:
            return False
        self.size = len(kept) + _RECORD_OVERHEAD
        self._scope = None
        self._flat = None
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
        packed = pack_connection(self, 0, self.count(), redactor, end, keep_secrets=True)
        self.packed = packed
        self.size = len(packed) + _RECORD_OVERHEAD
        self._scope = None
        self._flat = None
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
            "type": self.kind,
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
