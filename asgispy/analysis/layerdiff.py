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
only when their sizes are equal, so a viewer can run it for every connection. What it returns,
:class:`~asgispy.analysis.layerchanges.Changes`, is data of its own module, which a session
file's document becomes again without a diff.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from asgispy.analysis.layerchanges import (
    BodyChange,
    Changes,
    ExceptionChange,
    FrameChange,
    HeaderChanges,
    Hold,
    ScopeChange,
)
from asgispy.analysis.reading import (
    as_bytes,
    finite_float,
    header_pairs,
    nonempty_str,
    plain_int,
    scope_get,
    scope_items,
)
from asgispy.analysis.summaries import summarize

__all__ = ["HOLD_THRESHOLD", "Side", "layer_changes"]

#: The shortest hold (seconds) reported: below it the hops of a pass-through layer are noise.
HOLD_THRESHOLD = 0.005

_STARTS = ("http.response.start", "websocket.accept", "websocket.http.response.start")
_BODIES = ("http.response.body", "websocket.http.response.body")


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
            header_pairs(scope_get(outer_scope, "headers")), header_pairs(scope_get(inner_scope, "headers"))
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
    inner_error, outer_error = nonempty_str(inner.error), nonempty_str(outer.error)
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
            direction, t, message = event[0], finite_float(event[1]), event[2]
            if not isinstance(message, dict):
                continue
            kind = message.get("type")
            if direction == "receive":
                if kind == "http.request":
                    self.request.append((t, as_bytes(message.get("body"))))
                elif kind == "websocket.receive":
                    self.received.append(_payload(message))
            elif direction == "send":
                if kind in _BODIES:
                    self.response.append((t, as_bytes(message.get("body"))))
                elif kind == "websocket.send":
                    self.sent.append(_payload(message))
                elif kind in _STARTS and self.start is None:
                    self.start = message
                    self.start_headers = header_pairs(message.get("headers"))
                    self.status = plain_int(message.get("status"))


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
    old = scope_items(before)
    new = scope_items(after)
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
    times = [finite_float(v) for v in (outer.entered, inner.entered, inner.exited, outer.exited)]
    if None in times:
        return None
    o_in, i_in, i_out, o_out = (v or 0.0 for v in times)
    return max(0.0, (i_in - o_in) + (o_out - i_out))


def _span(start: Any, end: Any) -> float | None:
    a, b = finite_float(start), finite_float(end)
    return None if a is None or b is None else max(0.0, b - a)


def _values(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [v for n, v in headers if n == name]


def _payload(message: dict[str, Any]) -> Any:
    data = message.get("bytes")
    return data if data is not None else message.get("text")


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
