"""What one middleware layer did to a connection, from what crossed its two sides.

In layers mode asgispy records, for every layer of the middleware stack, the scope and the
messages on its outer side (towards the server) and on its inner side (towards the next app
inward). Requests flow outer → inner, responses inner → outer, so comparing the two sides
tells what the layer itself did: headers and scope keys it set, bodies it rewrote, chunks it
held back, an exception it turned into a response::

    changes = layer_changes(Side(scope, events, 0.0, 0.9), Side(inner_scope, inner_events, 0.1, 0.8))
    changes.changed     # False for a layer that passed everything through
    changes.words()     # ["+ content-encoding: gzip", "response body rewritten: 5.0 KiB → 1.2 KiB (gzip)"]

The messages are taken as the app saw them and may be anything at all: the diff skips what
it cannot read instead of raising. It is linear in the number of messages and joins bodies
only when their sizes are equal, so a viewer can run it for every connection.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, Literal

__all__ = [
    "HOLD_THRESHOLD",
    "BodyChange",
    "Changes",
    "ExceptionChange",
    "FrameChange",
    "HeaderChanges",
    "Hold",
    "ScopeChange",
    "Side",
    "format_duration",
    "format_size",
    "layer_changes",
    "summarize",
]

#: The shortest hold (seconds) reported: below it the hops of a pass-through layer are noise.
HOLD_THRESHOLD = 0.005

_STARTS = ("http.response.start", "websocket.accept", "websocket.http.response.start")
_BODIES = ("http.response.body", "websocket.http.response.body")
_LIMIT = 60  # longest value summary in words and scope summaries
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_DEFAULT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")
_PATH_REPR = re.compile(r"\w+\(path='([^']*)'")


@dataclass(frozen=True, slots=True)
class Side:
    """What crossed one side of a layer."""

    #: the scope as this side saw it (None: the layer never called inward)
    scope: Mapping[str, Any] | None
    #: (direction "receive"/"send", t seconds since the connection began, message as the app
    #: saw it, seconds spent waiting in the call or None)
    events: Sequence[tuple[str, float, Any, float | None]]
    #: when this side was entered (t)
    entered: float | None = None
    #: when the call on this side returned or raised (t)
    exited: float | None = None
    #: "ValueError: boom" if the call on this side raised
    error: str | None = None


@dataclass(frozen=True, slots=True)
class HeaderChanges:
    """Headers the layer set, dropped or replaced; names lower-case, all text latin-1.

    Pairs rather than a mapping, because a header may repeat (``set-cookie``): a name whose
    single value was replaced is in ``changed``, extra or missing values of a repeated
    header are in ``added`` and ``removed``.
    """

    added: tuple[tuple[str, str], ...] = ()  # (name, value)
    removed: tuple[tuple[str, str], ...] = ()  # (name, value)
    changed: tuple[tuple[str, str, str], ...] = ()  # (name, before, after)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def words(self, prefix: str = "") -> list[str]:
        """``+ name: value``, ``- name: value``, ``~ name: before → after``."""
        lines = [f"{prefix}+ {name}: {_clip(value)}" for name, value in self.added]
        lines += [f"{prefix}- {name}: {_clip(value)}" for name, value in self.removed]
        lines += [f"{prefix}~ {name}: {_clip(a)} → {_clip(b)}" for name, a, b in self.changed]
        return lines

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        if self.added:
            doc["added"] = [list(p) for p in self.added]
        if self.removed:
            doc["removed"] = [list(p) for p in self.removed]
        if self.changed:
            doc["changed"] = [list(p) for p in self.changed]
        return doc

    @classmethod
    def from_document(cls, doc: Any) -> HeaderChanges:
        if not isinstance(doc, Mapping):
            return cls()
        return cls(
            tuple((a, b) for a, b in _str_rows(doc.get("added"), 2)),
            tuple((a, b) for a, b in _str_rows(doc.get("removed"), 2)),
            tuple((a, b, c) for a, b, c in _str_rows(doc.get("changed"), 3)),
        )


@dataclass(frozen=True, slots=True)
class ScopeChange:
    """A scope key the layer set, replaced or removed, its values as short summaries."""

    key: str
    before: str | None  # None: the layer added the key
    after: str | None  # None: the layer removed the key

    def words(self) -> str:
        if self.before is None:
            return f"scope + {self.key}: {self.after}"
        if self.after is None:
            return f"scope - {self.key}: {self.before}"
        return f"scope ~ {self.key}: {self.before} → {self.after}"


@dataclass(frozen=True, slots=True)
class BodyChange:
    """A body the layer rewrote or re-chunked, before and after it (in flow order: request
    outer → inner, response inner → outer).

    Chunks are the body messages that carried bytes: the empty closing message many apps and
    layers add is not counted, so re-streaming the same bytes is not taken for a split.
    """

    before: int  # bytes
    after: int
    chunks_before: int
    chunks_after: int
    rewritten: bool  # the bytes differ
    encoding: str | None = None  # the content-encoding the layer put on the response (gzip)

    def words(self, which: str) -> str:
        if self.rewritten:
            text = f"{which} body rewritten: {format_size(self.before)} → {format_size(self.after)}"
            if self.encoding:
                text += f" ({self.encoding})"
            if self.chunks_before != self.chunks_after:
                text += f", {_count(self.chunks_before, 'message')} → {self.chunks_after}"
            return text
        what = "message" if which == "response" else "request message"
        if self.chunks_before < self.chunks_after:
            return f"split {_count(self.chunks_before, what)} into {self.chunks_after}"
        return f"merged {_count(self.chunks_before, what)} into {self.chunks_after}"


@dataclass(frozen=True, slots=True)
class Hold:
    """Response bytes the layer kept before passing them on: the longest wait of any byte.

    ``chunks`` is how many inner body messages the outer message that ended that wait
    carried, together; the counts compare body messages with bytes on both sides.
    """

    seconds: float
    chunks: int
    chunks_before: int  # inner body messages with bytes
    chunks_after: int  # outer body messages with bytes

    def words(self) -> str:
        if self.chunks > 1:
            return f"held {self.chunks} chunks for {format_duration(self.seconds)}, released together"
        return f"held 1 chunk for {format_duration(self.seconds)}"


@dataclass(frozen=True, slots=True)
class ExceptionChange:
    """An exception on either side of the layer and what the layer made of it."""

    inner: str | None  # what the inner side raised; None: the layer raised on its own
    outer: str | None  # what the layer's own call raised (equal to inner: passed through)
    status: int | None  # the response the layer sent instead (the inner side had not started one)

    @property
    def fate(self) -> Literal["handled", "swallowed", "propagated", "replaced", "raised"]:
        """``handled``: turned into a response; ``propagated``: raised on unchanged."""
        if self.inner is None:
            return "raised"
        if self.outer is None:
            return "handled" if self.status is not None else "swallowed"
        return "propagated" if self.outer == self.inner else "replaced"

    @property
    def changed(self) -> bool:
        """An exception that only passed through is not the layer's doing."""
        return self.fate != "propagated" or self.status is not None

    def words(self) -> str:
        sent = f" → {self.status}" if self.status is not None else ""
        fate = self.fate
        if fate == "raised":
            return f"raised {self.outer}"
        if fate == "handled":
            return f"{self.inner}{sent}"
        if fate == "swallowed":
            return f"{self.inner} swallowed"
        if fate == "propagated":
            return f"{self.inner}{sent}, propagated"
        return f"{self.inner}{sent} → raised {self.outer}"


@dataclass(frozen=True, slots=True)
class FrameChange:
    """WebSocket frames of one direction the layer dropped, added or rewrote."""

    direction: str  # "receive" (client → app, outer → inner) or "send" (inner → outer)
    before: int
    after: int
    rewritten: int  # frames at the same position whose payload differs

    def words(self) -> list[str]:
        kind = "received" if self.direction == "receive" else "sent"
        lines = []
        if self.rewritten:
            lines.append(f"rewrote {_count(self.rewritten, kind + ' frame')}")
        if self.after < self.before:
            lines.append(f"dropped {self.before - self.after} of {_count(self.before, kind + ' frame')}")
        elif self.after > self.before:
            lines.append(f"added {_count(self.after - self.before, kind + ' frame')}")
        return lines


@dataclass(frozen=True, slots=True)
class Changes:
    """What one layer did to one connection; empty fields mean "nothing of that kind".

    ``words()`` is non-empty exactly when ``changed``; the time spent inside the layer is
    data only, since every layer takes some.
    """

    request_headers: HeaderChanges = HeaderChanges()
    scope: tuple[ScopeChange, ...] = ()
    request_body: BodyChange | None = None
    #: False: the layer answered (or gave up) without calling inward; None: not known (innermost)
    called_inward: bool | None = None
    #: status of a response the layer sent although the inner side sent none and raised nothing
    answered: int | None = None
    exception: ExceptionChange | None = None
    status: tuple[int, int] | None = None  # (inner, outer) when they differ
    response_headers: HeaderChanges = HeaderChanges()
    response_body: BodyChange | None = None
    hold: Hold | None = None
    frames: tuple[FrameChange, ...] = ()
    #: seconds spent in the layer itself, outside the inner call (None: not known)
    time_inside: float | None = None

    @property
    def changed(self) -> bool:
        """Whether the layer did anything besides taking time."""
        return bool(
            self.request_headers
            or self.scope
            or self.request_body
            or self.called_inward is False
            or self.answered is not None
            or (self.exception is not None and self.exception.changed)
            or self.status
            or self.response_headers
            or self.response_body
            or self.hold
            or self.frames
        )

    def words(self) -> list[str]:
        """Short lines, in the order the request and then the response crossed the layer."""
        lines = self.request_headers.words("request ")
        lines += [change.words() for change in self.scope]
        if self.request_body is not None:
            lines.append(self.request_body.words("request"))
        if self.called_inward is False:
            if self.answered is not None:
                lines.append(f"answered {self.answered} without calling inward")
            else:
                lines.append("did not call inward")
        elif self.answered is not None:
            lines.append(f"answered {self.answered} itself")
        if self.exception is not None and self.exception.changed:
            lines.append(self.exception.words())
        if self.status is not None:
            lines.append(f"status {self.status[0]} → {self.status[1]}")
        lines += self.response_headers.words()
        if self.response_body is not None:
            lines.append(self.response_body.words("response"))
        if self.hold is not None:
            lines.append(self.hold.words())
        for frames in self.frames:
            lines += frames.words()
        return lines

    def document(self) -> dict[str, Any]:
        """JSON-able form for a session file: only what is there, all text, no objects."""
        doc: dict[str, Any] = {}
        if self.request_headers:
            doc["request_headers"] = self.request_headers.document()
        if self.scope:
            doc["scope"] = [[c.key, c.before, c.after] for c in self.scope]
        if self.request_body is not None:
            doc["request_body"] = _body_document(self.request_body)
        if self.called_inward is not None:
            doc["called_inward"] = self.called_inward
        if self.answered is not None:
            doc["answered"] = self.answered
        if self.exception is not None:
            e = self.exception
            doc["exception"] = {"inner": e.inner, "outer": e.outer, "status": e.status}
        if self.status is not None:
            doc["status"] = list(self.status)
        if self.response_headers:
            doc["response_headers"] = self.response_headers.document()
        if self.response_body is not None:
            doc["response_body"] = _body_document(self.response_body)
        if self.hold is not None:
            h = self.hold
            doc["hold"] = {
                "seconds": h.seconds,
                "chunks": h.chunks,
                "chunks_before": h.chunks_before,
                "chunks_after": h.chunks_after,
            }
        if self.frames:
            doc["frames"] = [[f.direction, f.before, f.after, f.rewritten] for f in self.frames]
        if self.time_inside is not None:
            doc["time_inside"] = self.time_inside
        return doc

    @classmethod
    def from_document(cls, doc: Any) -> Changes:
        """The changes :meth:`document` wrote; parts that do not read are left out, not raised on."""
        if not isinstance(doc, Mapping):
            return cls()
        scope = [
            ScopeChange(row[0], row[1], row[2])
            for row in _rows(doc.get("scope"), 3)
            if type(row[0]) is str and all(v is None or type(v) is str for v in row[1:])
        ]
        exception = None
        e = doc.get("exception")
        if isinstance(e, Mapping) and (_opt_str(e.get("inner")) or _opt_str(e.get("outer"))):
            exception = ExceptionChange(
                _opt_str(e.get("inner")), _opt_str(e.get("outer")), _int(e.get("status"))
            )
        status = doc.get("status")
        hold = None
        h = doc.get("hold")
        if isinstance(h, Mapping) and _float(h.get("seconds")) is not None:
            hold = Hold(
                _float(h.get("seconds")) or 0.0,
                _int(h.get("chunks")) or 0,
                _int(h.get("chunks_before")) or 0,
                _int(h.get("chunks_after")) or 0,
            )
        frames = []
        for row in _rows(doc.get("frames"), 4):
            if type(row[0]) is str:
                counts = [_int(v) for v in row[1:]]
                if None not in counts:
                    frames.append(FrameChange(row[0], counts[0] or 0, counts[1] or 0, counts[2] or 0))
        called = doc.get("called_inward")
        return cls(
            request_headers=HeaderChanges.from_document(doc.get("request_headers")),
            scope=tuple(scope),
            request_body=_body_from_document(doc.get("request_body")),
            called_inward=called if type(called) is bool else None,
            answered=_int(doc.get("answered")),
            exception=exception,
            status=(
                (status[0], status[1])
                if isinstance(status, list) and len(status) == 2 and all(_int(s) is not None for s in status)
                else None
            ),
            response_headers=HeaderChanges.from_document(doc.get("response_headers")),
            response_body=_body_from_document(doc.get("response_body")),
            hold=hold,
            frames=tuple(frames),
            time_inside=_float(doc.get("time_inside")),
        )


def layer_changes(outer: Side, inner: Side | None) -> Changes:
    """What the layer between ``outer`` and ``inner`` did; ``inner`` is None for the innermost
    layer, of which nothing is known below, so only its time is given."""
    if inner is None:
        return Changes(time_inside=_span(outer.entered, outer.exited))
    outer_scope = outer.scope if isinstance(outer.scope, Mapping) else None
    inner_scope = inner.scope if isinstance(inner.scope, Mapping) else None
    called = inner.scope is not None
    # A layer that never called inward spent all of its call in itself.
    time_inside = _time_inside(outer, inner) if called else _span(outer.entered, outer.exited)

    request_headers = HeaderChanges()
    scope: tuple[ScopeChange, ...] = ()
    if outer_scope is not None and inner_scope is not None:
        request_headers = _header_changes(
            _headers(_get(outer_scope, "headers")), _headers(_get(inner_scope, "headers"))
        )
        scope = _scope_changes(outer_scope, inner_scope)

    o, i = _Flow(outer.events), _Flow(inner.events)
    request_body = _body_change(o.request, i.request) if called else None

    status: tuple[int, int] | None = None
    response_headers = HeaderChanges()
    response_body: BodyChange | None = None
    hold: Hold | None = None
    answered: int | None = None
    exception: ExceptionChange | None = None
    if i.start is not None and o.start is not None:
        if i.status is not None and o.status is not None and i.status != o.status:
            status = (i.status, o.status)
        response_headers = _header_changes(i.start_headers, o.start_headers)
    if i.start is not None:
        encoding = None
        coded = _values(o.start_headers, "content-encoding")
        if coded and coded != _values(i.start_headers, "content-encoding"):
            encoding = ", ".join(coded)
        response_body = _body_change(i.response, o.response, encoding)
        hold = _hold(i.response, o.response)
    inner_error, outer_error = _opt_str(inner.error), _opt_str(outer.error)
    if inner_error is not None:
        sent = o.status if i.start is None else None
        exception = ExceptionChange(inner_error, outer_error, sent)
    elif outer_error is not None:
        exception = ExceptionChange(None, outer_error, None)
    elif i.start is None and o.start is not None:
        answered = o.status

    frames = tuple(
        f
        for f in (_frame_change("receive", o.received, i.received), _frame_change("send", i.sent, o.sent))
        if f is not None
    )
    return Changes(
        request_headers=request_headers,
        scope=scope,
        request_body=request_body,
        called_inward=called,
        answered=answered,
        exception=exception,
        status=status,
        response_headers=response_headers,
        response_body=response_body,
        hold=hold,
        frames=frames,
        time_inside=time_inside,
    )


class _Flow:
    """One side's messages sorted into what the diff compares, in one pass."""

    __slots__ = ("received", "request", "response", "sent", "start", "start_headers", "status")

    def __init__(self, events: Any) -> None:
        self.request: list[tuple[float | None, bytes]] = []  # http.request bodies (receive)
        self.response: list[tuple[float | None, bytes]] = []  # response bodies (send)
        self.received: list[Any] = []  # websocket.receive payloads
        self.sent: list[Any] = []  # websocket.send payloads
        self.start: dict[str, Any] | None = None
        self.start_headers: list[tuple[str, str]] = []
        self.status: int | None = None
        if not isinstance(events, Sequence) or isinstance(events, (str, bytes, bytearray)):
            events = ()
        for event in events:
            if not isinstance(event, (list, tuple)) or len(event) < 3:
                continue
            direction, t, message = event[0], _float(event[1]), event[2]
            if not isinstance(message, dict):
                continue
            kind = message.get("type")
            if direction == "receive":
                if kind == "http.request":
                    self.request.append((t, _bytes(message.get("body"))))
                elif kind == "websocket.receive":
                    self.received.append(_payload(message))
            elif direction == "send":
                if kind in _BODIES:
                    self.response.append((t, _bytes(message.get("body"))))
                elif kind == "websocket.send":
                    self.sent.append(_payload(message))
                elif kind in _STARTS and self.start is None:
                    self.start = message
                    self.start_headers = _headers(message.get("headers"))
                    self.status = _int(message.get("status"))


def _header_changes(before: list[tuple[str, str]], after: list[tuple[str, str]]) -> HeaderChanges:
    if before == after:
        return HeaderChanges()
    old: dict[str, list[str]] = {}
    for name, value in before:
        old.setdefault(name, []).append(value)
    new: dict[str, list[str]] = {}
    for name, value in after:
        new.setdefault(name, []).append(value)
    added: list[tuple[str, str]] = []
    removed: list[tuple[str, str]] = []
    changed: list[tuple[str, str, str]] = []
    for name, values in new.items():
        was = old.get(name)
        if was is None:
            added += [(name, v) for v in values]
        elif was != values:
            if len(was) == 1 and len(values) == 1:
                changed.append((name, was[0], values[0]))
            else:
                rest = list(was)
                for v in values:
                    if v in rest:
                        rest.remove(v)
                    else:
                        added.append((name, v))
                removed += [(name, v) for v in rest]
    for name, values in old.items():
        if name not in new:
            removed += [(name, v) for v in values]
    return HeaderChanges(tuple(added), tuple(removed), tuple(changed))


def _scope_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[ScopeChange, ...]:
    old = _items(before)
    new = _items(after)
    changes = []
    for key, value in new.items():
        if key == "headers":
            continue
        if key not in old:
            changes.append(ScopeChange(_key(key), None, summarize(value)))
        elif not _same(old[key], value):
            changes.append(ScopeChange(_key(key), summarize(old[key]), summarize(value)))
    changes += [
        ScopeChange(_key(k), summarize(v), None) for k, v in old.items() if k not in new and k != "headers"
    ]
    return tuple(changes)


def _body_change(
    before: list[tuple[float | None, bytes]],
    after: list[tuple[float | None, bytes]],
    encoding: str | None = None,
) -> BodyChange | None:
    size_before = sum(len(b) for _, b in before)
    size_after = sum(len(b) for _, b in after)
    # Different sizes cannot be the same bytes: join (copy) only when they might be.
    rewritten = size_before != size_after or b"".join(b for _, b in before) != b"".join(b for _, b in after)
    chunks_before = sum(1 for _, b in before if b)
    chunks_after = sum(1 for _, b in after if b)
    if not rewritten and chunks_before == chunks_after:
        return None
    return BodyChange(size_before, size_after, chunks_before, chunks_after, rewritten, encoding)


def _hold(inner: list[tuple[float | None, bytes]], outer: list[tuple[float | None, bytes]]) -> Hold | None:
    """The longest any response byte waited in the layer: each outer body message is matched
    to the inner messages that produced its bytes (by cumulative offset, scaled by the size
    ratio when the layer rewrote the body), and waited since the first of them was sent."""
    produced = [(t, len(b)) for t, b in inner if b]
    released = [(t, len(b)) for t, b in outer if b]
    inner_total = sum(n for _, n in produced)
    outer_total = sum(n for _, n in released)
    if not inner_total or not outer_total:
        return None
    starts, ends = [], []
    offset = 0
    for _, n in produced:
        starts.append(offset)
        offset += n
        ends.append(offset)
    best: tuple[float, int] | None = None
    i = 0
    position = 0
    for t, n in released:
        # Outer range [position, position + n) in inner bytes, compared multiplied out to stay exact.
        low, position = position * inner_total, position + n
        high = position * inner_total
        while i < len(ends) and ends[i] * outer_total <= low:
            i += 1
        if i == len(ends):
            break
        j = i
        while j < len(starts) and starts[j] * outer_total < high:
            j += 1
        first = produced[i][0]
        if t is None or first is None:
            continue
        held = t - first
        if best is None or held > best[0]:
            best = (held, j - i)
    if best is None or best[0] < HOLD_THRESHOLD:
        return None
    return Hold(best[0], best[1], len(produced), len(released))


def _frame_change(direction: str, before: list[Any], after: list[Any]) -> FrameChange | None:
    rewritten = sum(1 for a, b in zip(before, after, strict=False) if not _same(a, b))
    if not rewritten and len(before) == len(after):
        return None
    return FrameChange(direction, len(before), len(after), rewritten)


def _time_inside(outer: Side, inner: Side) -> float | None:
    times = [_float(v) for v in (outer.entered, inner.entered, inner.exited, outer.exited)]
    if None in times:
        return None
    o_in, i_in, i_out, o_out = (v or 0.0 for v in times)
    return max(0.0, (i_in - o_in) + (o_out - i_out))


def _span(start: Any, end: Any) -> float | None:
    a, b = _float(start), _float(end)
    return None if a is None or b is None else max(0.0, b - a)


def summarize(value: Any) -> str:
    """A short, never-raising summary of any scope value for people.

    Plain data shows as its repr (clipped), containers a few items deep, routes by their path,
    other objects by their repr when it is short and says more than the default
    ``<x.Y object at 0x…>``, else by ``<TypeName>``. A recorded opaque object (type name and
    repr, as a session file keeps it) is shown like the object it stands for.
    """
    try:
        return _clip(_summary(value, 0))
    except Exception:
        return f"<{type(value).__name__}>"


def _summary(value: Any, depth: int) -> str:
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    if isinstance(value, str):
        return repr(value[:_LIMIT]) + ("…" if len(value) > _LIMIT else "")
    if isinstance(value, (bytes, bytearray)):
        return repr(bytes(value[:_LIMIT])) + ("…" if len(value) > _LIMIT else "")
    if isinstance(value, dict):
        if depth >= 2:
            return "{…}" if value else "{}"
        pairs = islice(value.items(), 4)
        parts = [f"{_summary(k, depth + 1)}: {_summary(v, depth + 1)}" for k, v in pairs]
        return "{" + ", ".join(parts) + (", …" if len(value) > 4 else "") + "}"
    if isinstance(value, (list, tuple, set, frozenset)):
        if isinstance(value, tuple):
            opening, closing = "(", ")"
        elif isinstance(value, (set, frozenset)):
            opening, closing = "{", "}"
        else:
            opening, closing = "[", "]"
        if depth >= 2:
            return f"{opening}…{closing}" if value else f"{opening}{closing}"
        parts = [_summary(v, depth + 1) for v in islice(value, 4)]
        if len(value) > 4:
            parts.append("…")
        elif isinstance(value, tuple) and len(value) == 1:
            parts[0] += ","
        return opening + ", ".join(parts) + closing
    return _object_summary(value)


def _object_summary(value: Any) -> str:
    name = type(value).__name__
    try:
        if name == "Opaque" and isinstance(getattr(value, "repr", None), str):
            name = str(getattr(value, "type", name)).rpartition(".")[2]
            text = str(value.repr)
        elif isinstance(getattr(value, "path_format", None), str):  # a route: Starlette, FastAPI
            path = getattr(value, "path", None)
            return path if isinstance(path, str) else str(value.path_format)
        else:
            text = repr(value)
    except Exception:  # a broken __repr__ or property
        return f"<{name}>"
    match = _PATH_REPR.match(text)
    if match:
        return match.group(1)
    if len(text) > _LIMIT or _DEFAULT_REPR.fullmatch(text):
        return f"<{name}>"
    return text


def format_size(n: int) -> str:
    """Bytes for people: ``812 B``, ``5.0 KiB``, ``3.2 MiB``."""
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / (1024 * 1024):.1f} MiB"


def format_duration(seconds: float) -> str:
    """Seconds for people, one decimal: ``850.0 µs``, ``812.0 ms``, ``1.5 s``."""
    if round(seconds * 1e6, 1) < 1000:
        return f"{seconds * 1e6:.1f} µs"
    if round(seconds * 1e3, 1) < 1000:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.1f} s"


def _headers(raw: Any) -> list[tuple[str, str]]:
    """Header pairs as (lower-case name, value), latin-1 text; what is not a pair is skipped."""
    items: Iterable[Any]
    if isinstance(raw, (list, tuple)):
        items = raw
    elif isinstance(raw, dict):
        items = raw.items()
    else:
        return []
    pairs = []
    for item in items:
        if isinstance(item, (list, tuple)) and len(item) == 2:
            name, value = _latin1(item[0]), _latin1(item[1])
            if name is not None and value is not None:
                pairs.append((name.translate(_ASCII_LOWER), value))
    return pairs


def _values(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [v for n, v in headers if n == name]


def _latin1(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin-1")
    return None


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        try:
            return bytes(value)
        except ValueError:  # a released memoryview
            return b""
    if isinstance(value, str):
        return value.encode("utf-8", "replace")
    return b""


def _payload(message: dict[str, Any]) -> Any:
    data = message.get("bytes")
    return data if data is not None else message.get("text")


def _items(scope: Mapping[str, Any]) -> dict[Any, Any]:
    try:
        return dict(scope.items())
    except Exception:
        return {}


def _get(scope: Mapping[str, Any], key: str) -> Any:
    try:
        return scope.get(key)
    except Exception:
        return None


def _same(a: Any, b: Any) -> bool:
    """Equality that survives objects whose ``==`` raises or returns no plain bool."""
    if a is b:
        return True
    try:
        return bool(a == b)
    except Exception:
        return summarize(a) == summarize(b)


def _key(key: Any) -> str:
    return key if isinstance(key, str) else summarize(key)


def _clip(text: str, limit: int = _LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _float(value: Any) -> float | None:
    """A finite number of seconds, or None."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _rows(rows: Any, width: int) -> list[list[Any]]:
    """The lists of ``width`` items in a document's list of rows."""
    if not isinstance(rows, list):
        return []
    return [r for r in rows if isinstance(r, list) and len(r) == width]


def _str_rows(rows: Any, width: int) -> list[list[str]]:
    return [r for r in _rows(rows, width) if all(type(v) is str for v in r)]


def _body_document(body: BodyChange) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "before": body.before,
        "after": body.after,
        "chunks_before": body.chunks_before,
        "chunks_after": body.chunks_after,
        "rewritten": body.rewritten,
    }
    if body.encoding is not None:
        doc["encoding"] = body.encoding
    return doc


def _body_from_document(doc: Any) -> BodyChange | None:
    if not isinstance(doc, Mapping):
        return None
    counts = [_int(doc.get(k)) for k in ("before", "after", "chunks_before", "chunks_after")]
    if None in counts:
        return None
    before, after, chunks_before, chunks_after = (c or 0 for c in counts)
    encoding = doc.get("encoding")
    return BodyChange(
        before,
        after,
        chunks_before,
        chunks_after,
        doc.get("rewritten") is True,
        encoding if isinstance(encoding, str) else None,
    )
