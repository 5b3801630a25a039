"""Reading the frames that carry connections: open, events and close, each field checked.

A collector runs these for every message a producer sends, so the two most frequent frames
have typed decoders besides the general readers (which also take the forms Spy does not send,
such as events without their wait). A field out of place is a ProtocolError that names it.
"""

from __future__ import annotations

from typing import Any

import msgspec

from asgispy.codec import pack
from asgispy.types import RECEIVE, SEND, Direction
from asgispy.wire.protocol import EVENTS, OPEN, ProtocolError, as_float

__all__ = [
    "RawWireEvent",
    "WireEvent",
    "decode_events_frame",
    "decode_open_frame",
    "is_events_frame",
    "is_open_frame",
    "parse_connection",
    "parse_end",
    "parse_events",
]

_OUTCOMES = frozenset({"completed", "exception", "cancelled", "cut off"})


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise ProtocolError(f"malformed frame: {what}")


#: An event as the wire brings it: ``(direction, t, message, cut, wait)``.
WireEvent = tuple[Direction, float, Any, "dict[str, int] | None", "float | None"]


def parse_events(events: Any) -> list[WireEvent]:
    """Packed events as ``(direction, t, message, cut, wait)``; ProtocolError on a wrong field."""
    _check(type(events) is list, "events that are not an array")
    out = []
    for event in events:
        # The wait may be left out (a producer that does not time calls): [direction, t, message, cut].
        _check(
            type(event) is list and 4 <= len(event) <= 5,
            "an event that is not [direction, t, message, cut, wait]",
        )
        direction, t, message, cut = event[:4]
        wait = event[4] if len(event) == 5 else None
        _check(direction in (0, 1) and type(direction) is int, f"an event direction of {direction!r}")
        t = as_float(t, "an event time")
        if wait is not None:
            wait = as_float(wait, "an event wait")
        if cut is not None:
            _check(
                type(cut) is dict and all(type(k) is str and type(v) is int for k, v in cut.items()),
                f"an event cut of {cut!r}",
            )
        out.append((SEND if direction else RECEIVE, t, message, cut, wait))
    return out


def _is_json(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is JSON's own data (what a session file can hold as it is)."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-(2**63) <= value < 2**64)
    if kind is float:
        return value == value and value not in (float("inf"), float("-inf"))
    if depth > 16:
        return False
    if kind is list:
        return all(_is_json(v, depth + 1) for v in value)
    if kind is dict:
        return all(type(k) is str and _is_json(v, depth + 1) for k, v in value.items())
    return False


def parse_end(end: Any) -> dict[str, Any] | None:
    """A packed end as the fields of a connection document; ProtocolError on a wrong field."""
    if end is None:
        return None
    # A seventh item, in layers mode: what crossed each layer (as in the session file); an
    # eighth, what asgispy's rules and addons did (the seventh is then None without layers); a
    # ninth, what the app did inside (outgoing calls, logs, SQL; the eighth is then a list).
    _check(type(end) is list and 6 <= len(end) <= 9, "an end that is not a 6-item array")
    outcome, duration, error, handler, notes, dropped = end[:6]
    layers = end[6] if len(end) >= 7 else None
    _check(layers is None or (type(layers) is list and _is_json(layers)), "layers that are not an array")
    interventions = end[7] if len(end) >= 8 else None
    _check(
        interventions is None
        or (type(interventions) is list and all(type(i) is dict for i in interventions)),
        "interventions that are not an array of maps",
    )
    inside = end[8] if len(end) == 9 else None
    _check(
        inside is None or (type(inside) is list and all(type(i) is dict and _is_json(i) for i in inside)),
        "inside entries that are not an array of maps",
    )
    _check(type(outcome) is str and outcome in _OUTCOMES, f"an outcome of {outcome!r:.40}")
    if duration is not None:
        duration = as_float(duration, "a duration")
    _check(error is None or (type(error) is dict and all(type(v) is str for v in error.values())), "an error")
    _check(handler is None or (type(handler) is dict and _is_json(handler)), "a handler that is not a map")
    _check(type(notes) is list and all(type(n) is str for n in notes), "notes that are not text")
    _check(type(dropped) is int and dropped >= 0, f"an events_dropped of {dropped!r}")
    return {
        "outcome": outcome,
        "duration": duration,
        "error": error,
        "handler": handler,
        "notes": notes,
        "events_dropped": dropped,
        **({"layers": layers} if layers is not None else {}),
        **({"interventions": interventions} if interventions else {}),
        **({"inside": inside} if inside else {}),
    }


def parse_connection(value: Any) -> tuple[int, str, float, Any, list[WireEvent], dict[str, Any] | None]:
    """A packed connection: ``(seq, type, started, scope, events, end)``, checked."""
    _check(type(value) is list and len(value) == 6, "a connection that is not a 6-item array")
    seq, kind, started, scope, events, end = value
    _check(type(seq) is int and seq >= 0, f"a connection seq of {seq!r}")
    _check(type(kind) is str and len(kind) <= 64, f"a connection type of {kind!r}")
    started = as_float(started, "a start time")
    _check(type(scope) is dict, "a scope that is not a map")
    return seq, kind, started, scope, parse_events(events), parse_end(end)


# The frames that carry messages are read with typed decoders: the types are checked in C, and
# each message comes as the very bytes the producer packed (msgspec.Raw), which the store keeps
# as they are instead of packing them again.

_RawEvent = tuple[int, float, msgspec.Raw, dict[str, int] | None, float | None]
_events_decoder = msgspec.msgpack.Decoder(tuple[int, int, int, list[_RawEvent]])
_open_decoder = msgspec.msgpack.Decoder(
    tuple[int, tuple[int, str, float, msgspec.Raw, list[_RawEvent], msgspec.Raw]]
)
_EVENTS_HEAD = bytes([0x94, EVENTS])  # a 4-item array whose first item is EVENTS
_OPEN_HEAD = bytes([0x92, OPEN])

#: An event with its message still packed: ``(direction, t, message, packed message, cut, wait)``.
RawWireEvent = tuple[Direction, float, Any, bytes, "dict[str, int] | None", "float | None"]


def is_events_frame(payload: bytes) -> bool:
    return payload[:2] == _EVENTS_HEAD


def is_open_frame(payload: bytes) -> bool:
    return payload[:2] == _OPEN_HEAD


def _raw_events(events: list[Any]) -> list[RawWireEvent]:
    out = []
    for direction, t, raw, cut, wait in events:
        _check(direction == 0 or direction == 1, f"an event direction of {direction!r}")
        data = bytes(raw)
        try:
            message = pack.decode(data)
        except ValueError as exc:
            raise ProtocolError(f"malformed frame: an event message ({exc})") from None
        out.append((SEND if direction else RECEIVE, t, message, data, cut, wait))
    return out


def decode_events_frame(payload: bytes) -> tuple[int, int, list[RawWireEvent]]:
    """An events frame: ``(seq, index, events)``; ProtocolError says what is wrong with it."""
    try:
        _, seq, index, events = _events_decoder.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ProtocolError(f"malformed frame: events ({exc})") from None
    _check(seq >= 0 and index >= 0, "a negative seq or index")
    return seq, index, _raw_events(events)


def decode_open_frame(
    payload: bytes,
) -> tuple[int, str, float, dict[str, Any], list[RawWireEvent], dict[str, Any] | None]:
    """An open frame: ``(seq, type, started, scope, events, end)``, checked."""
    try:
        _, (seq, kind, started, scope_raw, events, end_raw) = _open_decoder.decode(payload)
        scope = pack.decode(scope_raw)
        end = pack.decode(end_raw)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
        raise ProtocolError(f"malformed frame: a connection ({exc})") from None
    _check(seq >= 0, f"a connection seq of {seq!r}")
    _check(len(kind) <= 64, "a connection type over 64 characters")
    _check(type(scope) is dict, "a scope that is not a map")
    return seq, kind, started, scope, _raw_events(events), parse_end(end)
