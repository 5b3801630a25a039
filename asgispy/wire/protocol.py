"""The wire protocol between a producer (``Spy`` in the app's process) and a collector, version 2.

Every frame is a 4-byte big-endian length, then that many bytes of MessagePack (see
:mod:`asgispy.codec.pack` for how ASGI values travel in it). The producer speaks first with
a ``hello`` (a map); the collector answers ``welcome`` or ``error`` (maps); then only the
producer talks, in arrays whose first item says what they are:

* ``[OPEN, connection]``: a packed connection as known so far, maybe ended already;
* ``[EVENTS, seq, index, events]``: more events of connection ``seq``, the first of them its
  ``index``-th (from 0), so that a collector never counts an event sent again twice;
* ``[CLOSE, seq, end]``: how connection ``seq`` ended;
* ``[DROPPED, total]``: how much news the producer has dropped in all.

Frames are bounded (:data:`MAX_FRAME`): a length past it is refused before anything is read.
Version 1 spoke newline-delimited JSON; each side recognises the other's first bytes and
refuses it with a message that says what to do. docs/protocol.md describes every field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson

from asgispy.codec import pack
from asgispy.types import RECEIVE, SEND, Direction
from asgispy.version import __version__

__all__ = [
    "CLOSE",
    "DROPPED",
    "EVENTS",
    "MAX_FRAME",
    "OPEN",
    "PROTOCOL_VERSION",
    "FrameReader",
    "Hello",
    "ProtocolError",
    "decode_payload",
    "encode_frame",
    "error_frame",
    "hello_frame",
    "is_v1",
    "parse_connection",
    "parse_end",
    "parse_events",
    "parse_hello",
    "v1_error_line",
    "welcome_frame",
]

PROTOCOL_VERSION = 2
#: The versions this side speaks.
SUPPORTED = (2,)
#: The longest frame either side accepts, length prefix excluded.
MAX_FRAME = 16 * 1024 * 1024
OPEN, EVENTS, CLOSE, DROPPED = 1, 2, 3, 4
_LENGTH = 4
_OUTCOMES = frozenset({"completed", "exception", "cancelled", "cut off"})


class ProtocolError(ValueError):
    """A frame that is malformed, too large, out of place, or of an unknown version."""


# Encoding -----------------------------------------------------------------------------------


def encode_frame(value: Any) -> bytes:
    """One frame as bytes, its length first. ``value`` holds packed values (or ``msgspec.Raw``)."""
    body = pack.encode(value)
    return len(body).to_bytes(_LENGTH, "big") + body


def hello_frame(
    producer: str,
    host: str,
    pid: int,
    app: str,
    started: float,
    token: str | None = None,
) -> dict[str, Any]:

    frame: dict[str, Any] = {
        "type": "hello",
        "protocol": PROTOCOL_VERSION,
        "accepts": list(SUPPORTED),
        "asgispy": __version__,
        "producer": producer,
        "host": host,
        "pid": pid,
        "app": app,
        "started": started,
        # A version-1 collector reads up to a newline before it answers: this one makes it
        # answer at once (with an error we recognise), whatever the rest of the hello holds.
        "eol": "\n",
    }
    if token is not None:
        frame["token"] = token
    return frame


def welcome_frame() -> dict[str, Any]:

    return {"type": "welcome", "protocol": PROTOCOL_VERSION, "asgispy": __version__}


def error_frame(message: str) -> dict[str, Any]:

    return {"type": "error", "message": message, "protocol": PROTOCOL_VERSION, "asgispy": __version__}


# Version 1 ----------------------------------------------------------------------------------


def is_v1(head: bytes) -> bool:
    """Whether a peer's first bytes are version 1's newline-delimited JSON (``{"type": ...``)."""
    return head[:1] == b"{"


def v1_error_line(message: str) -> bytes:
    """An error a version-1 producer reads and logs (it speaks JSON lines)."""
    return orjson.dumps({"type": "error", "message": message}) + b"\n"


def v1_message(line: bytes) -> str:
    """What a version-1 collector said, for a log line."""
    try:
        frame = orjson.loads(line.split(b"\n", 1)[0])
        said = frame.get("message") if isinstance(frame, dict) else None
    except orjson.JSONDecodeError:
        said = None
    return str(said) if said else line[:80].decode("utf-8", "replace")


# Decoding -----------------------------------------------------------------------------------


def decode_payload(payload: bytes | memoryview) -> Any:
    """One frame's MessagePack as values; ProtocolError says what is wrong with it."""
    try:
        return pack.decode(payload)
    except ValueError as exc:
        raise ProtocolError(f"malformed frame ({exc}): {_preview(bytes(payload))}") from None


def _preview(data: bytes, limit: int = 40) -> str:
    return data[:limit].hex() + ("…" if len(data) > limit else "")


@dataclass(frozen=True)
class Hello:
    """Who a producer says it is."""

    protocol: int
    asgispy: str
    producer: str
    host: str
    pid: int
    app: str
    started: float
    token: str | None


def parse_hello(frame: Any) -> Hello:
    """Check a hello frame; ProtocolError for a wrong frame, field or protocol version."""
    if not isinstance(frame, Mapping) or frame.get("type") != "hello":
        kind = frame.get("type") if isinstance(frame, Mapping) else type(frame).__name__
        raise ProtocolError(f"expected a hello frame first, got {kind!r}")
    version = frame.get("protocol")
    accepts = frame.get("accepts", [version])
    if type(version) is not int or type(accepts) is not list:
        raise ProtocolError(f"hello without a protocol version: {version!r}")
    if not any(v in SUPPORTED for v in accepts):
        raise ProtocolError(
            f"this collector (asgispy {_version()}) speaks protocol {_versions()}, the producer "
            f"(asgispy {frame.get('asgispy', '?')}) speaks {accepts}: use the same asgispy on both sides"
        )
    producer = frame.get("producer")
    if type(producer) is not str or not producer or len(producer) > 64:
        raise ProtocolError(f"hello with an invalid producer tag: {producer!r}")
    pid = frame.get("pid", 0)
    started = frame.get("started", 0.0)
    token = frame.get("token")
    if type(pid) is not int or type(started) not in (int, float):
        raise ProtocolError("hello with an invalid pid or start time")
    started = _number(started, "a start time")
    if token is not None and type(token) is not str:
        raise ProtocolError("hello with a token that is not a string")
    return Hello(
        protocol=PROTOCOL_VERSION,
        asgispy=str(frame.get("asgispy", "")),
        producer=producer,
        host=str(frame.get("host", "")),
        pid=pid,
        app=str(frame.get("app", "")),
        started=started,
        token=token,
    )


def _version() -> str:

    return __version__


def _versions() -> str:
    return " or ".join(str(v) for v in SUPPORTED)


def _number(value: Any, what: str) -> float:
    """A finite-size number as float; ProtocolError for anything else (an integer past floats, too)."""
    if type(value) not in (int, float):
        raise ProtocolError(f"malformed frame: {what} of {value!r:.40}")
    try:
        return float(value)
    except OverflowError:
        raise ProtocolError(f"malformed frame: {what} out of range") from None


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
        t = _number(t, "an event time")
        if wait is not None:
            wait = _number(wait, "an event wait")
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
    # A seventh item, in layers mode: what crossed each layer (as in the session file).
    _check(type(end) is list and 6 <= len(end) <= 7, "an end that is not a 6-item array")
    outcome, duration, error, handler, notes, dropped = end[:6]
    layers = end[6] if len(end) == 7 else None
    _check(layers is None or (type(layers) is list and _is_json(layers)), "layers that are not an array")
    _check(type(outcome) is str and outcome in _OUTCOMES, f"an outcome of {outcome!r:.40}")
    if duration is not None:
        duration = _number(duration, "a duration")
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
    }


def parse_connection(value: Any) -> tuple[int, str, float, Any, list[WireEvent], dict[str, Any] | None]:
    """A packed connection: ``(seq, type, started, scope, events, end)``, checked."""
    _check(type(value) is list and len(value) == 6, "a connection that is not a 6-item array")
    seq, kind, started, scope, events, end = value
    _check(type(seq) is int and seq >= 0, f"a connection seq of {seq!r}")
    _check(type(kind) is str and len(kind) <= 64, f"a connection type of {kind!r}")
    started = _number(started, "a start time")
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


class FrameReader:
    """Splits a byte stream into frames, refusing any frame longer than ``max_frame``."""

    __slots__ = ("_buffer", "error", "max_frame")

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buffer = bytearray()
        #: an oversized frame found after complete ones: raised by the caller once it has
        #: applied those (so what came before the bad frame is never lost)
        self.error: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes of a frame begun but not yet ended."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """The complete frames' payloads that ``data`` ends; keeps the unfinished rest."""
        buffer = self._buffer
        buffer += data
        frames: list[bytes] = []
        start = 0
        end = len(buffer)
        limit = self.max_frame
        while end - start >= _LENGTH:
            size = int.from_bytes(buffer[start : start + _LENGTH], "big")
            if size > limit:
                error = ProtocolError(f"oversized frame ({size} bytes; the limit is {limit})")
                if not frames:
                    raise error
                self.error = error
                break
            if end - start - _LENGTH < size:
                break
            frames.append(bytes(buffer[start + _LENGTH : start + _LENGTH + size]))
            start += _LENGTH + size
        if start:
            del buffer[:start]
        return frames
