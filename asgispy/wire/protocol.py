"""The wire protocol between a producer (``Spy`` in the app's process) and a collector, version 2.

Every frame is a 4-byte big-endian length, then that many bytes of MessagePack (see
:mod:`asgispy.codec.pack` for how ASGI values travel in it). The producer speaks first with
a ``hello`` (a map); the collector answers ``welcome`` or ``error`` (maps); then only the
producer talks, in arrays whose first item says what they are:

* ``[OPEN, connection]``: a packed connection as known so far, maybe ended already;
* ``[EVENTS, seq, index, events]``: more events of connection ``seq``, the first of them its
  ``index``-th (from 0), so that a collector never counts an event sent again twice;
* ``[CLOSE, seq, end]``: how connection ``seq`` ended;
* ``[DROPPED, total]``: how much news the producer has dropped in all;
* ``[CONTROL, report]``: what an app that may be controlled tells its viewer (a map: a
  connection held at a breakpoint, one released, its rules and breakpoints).

A producer whose hello says ``"control": true`` (an app made with ``Spy(app, intercept=True)``)
also reads, after the welcome, the collector's ``{"type": "control", "request": {...}}`` maps:
what the viewer asks of it (see :mod:`asgispy.intercept.control`). Any other producer is never
sent one.

Frames are bounded (:data:`MAX_FRAME`): a length past it is refused before anything is read.
This module holds what every frame shares: its length, kinds, bound, encoding and splitting.
The handshake maps (and version 1's detection) are in :mod:`asgispy.wire.handshake`, the
readers of the connection frames in :mod:`asgispy.wire.readers`. docs/protocol.md describes
every field.
"""

from __future__ import annotations

from typing import Any

from asgispy.codec import pack

__all__ = [
    "CLOSE",
    "CONTROL",
    "DROPPED",
    "EVENTS",
    "MAX_FRAME",
    "OPEN",
    "PROTOCOL_VERSION",
    "SUPPORTED",
    "FrameReader",
    "ProtocolError",
    "as_float",
    "decode_payload",
    "encode_frame",
]

PROTOCOL_VERSION = 2
#: The versions this side speaks.
SUPPORTED = (2,)
#: The longest frame either side accepts, length prefix excluded.
MAX_FRAME = 16 * 1024 * 1024
OPEN, EVENTS, CLOSE, DROPPED, CONTROL = 1, 2, 3, 4, 5
_LENGTH = 4


class ProtocolError(ValueError):
    """A frame that is malformed, too large, out of place, or of an unknown version."""


# Encoding -----------------------------------------------------------------------------------


def encode_frame(value: Any) -> bytes:
    """One frame as bytes, its length first. ``value`` holds packed values (or ``msgspec.Raw``)."""
    body = pack.encode(value)
    return len(body).to_bytes(_LENGTH, "big") + body


# Decoding -----------------------------------------------------------------------------------


def decode_payload(payload: bytes | memoryview) -> Any:
    """One frame's MessagePack as values; ProtocolError says what is wrong with it."""
    try:
        return pack.decode(payload)
    except ValueError as exc:
        raise ProtocolError(f"malformed frame ({exc}): {_preview(bytes(payload))}") from None


def _preview(data: bytes, limit: int = 40) -> str:
    return data[:limit].hex() + ("…" if len(data) > limit else "")


def as_float(value: Any, what: str) -> float:
    """A finite-size number as float; ProtocolError for anything else (an integer past floats, too)."""
    if type(value) not in (int, float):
        raise ProtocolError(f"malformed frame: {what} of {value!r:.40}")
    try:
        return float(value)
    except OverflowError:
        raise ProtocolError(f"malformed frame: {what} out of range") from None


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
