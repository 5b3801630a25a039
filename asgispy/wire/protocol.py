"""The wire protocol between a producer (``Spy`` in the app's process) and a collector.

Newline-delimited JSON: each frame is one JSON object on one line (JSON escapes newlines
inside strings, so a newline always ends a frame). The producer speaks first with a
``hello``; the collector answers ``welcome`` or ``error``; then only the producer talks:
``open``, ``event``, ``close`` and ``dropped`` frames. docs/protocol.md describes every field.

Frames are bounded (:data:`MAX_FRAME`), so one bad or hostile producer cannot make a
collector buffer without limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "MAX_FRAME",
    "PROTOCOL_VERSION",
    "FrameReader",
    "Hello",
    "ProtocolError",
    "close_frame",
    "decode_frame",
    "dropped_frame",
    "encode_frame",
    "error_frame",
    "event_frame",
    "hello_frame",
    "open_frame",
    "parse_hello",
    "welcome_frame",
]

PROTOCOL_VERSION = 1
#: The longest frame either side accepts, newline excluded.
MAX_FRAME = 16 * 1024 * 1024

#: What a close frame carries besides the connection id: how the connection ended.
END_FIELDS = ("outcome", "duration", "error", "handler", "notes", "events_dropped")


class ProtocolError(ValueError):
    """A frame that is malformed, too large, out of place, or of an unknown version."""


# Encoding -----------------------------------------------------------------------------------


def encode_frame(frame: Mapping[str, Any]) -> bytes:
    """One frame as bytes, newline included."""
    return orjson.dumps(frame, option=orjson.OPT_APPEND_NEWLINE)


def hello_frame(
    producer: str,
    host: str,
    pid: int,
    app: str,
    started: float,
    token: str | None = None,
) -> dict[str, Any]:
    from asgispy import __version__

    frame: dict[str, Any] = {
        "type": "hello",
        "protocol": PROTOCOL_VERSION,
        "asgispy": __version__,
        "producer": producer,
        "host": host,
        "pid": pid,
        "app": app,
        "started": started,
    }
    if token is not None:
        frame["token"] = token
    return frame


def welcome_frame() -> dict[str, Any]:
    from asgispy import __version__

    return {"type": "welcome", "protocol": PROTOCOL_VERSION, "asgispy": __version__}


def error_frame(message: str) -> dict[str, Any]:
    return {"type": "error", "message": message}


def open_frame(connection: Mapping[str, Any]) -> dict[str, Any]:
    """A connection began (or is sent again from history): its document, maybe with events."""
    return {"type": "open", "connection": connection}


def event_frame(id: str, index: int, event: Mapping[str, Any]) -> dict[str, Any]:
    """The ``index``-th message (from 0) of connection ``id``; a collector ignores repeats."""
    return {"type": "event", "id": id, "index": index, "event": event}


def close_frame(id: str, end: Mapping[str, Any]) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "close", "id": id}
    for key in END_FIELDS:
        frame[key] = end.get(key)
    return frame


def dropped_frame(total: int) -> dict[str, Any]:
    """How many events the producer has dropped in all, because its queue was full."""
    return {"type": "dropped", "total": total}


# Decoding -----------------------------------------------------------------------------------


def decode_frame(line: bytes) -> dict[str, Any]:
    """Parse one line into a frame; ProtocolError says what is wrong with it."""
    try:
        frame = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"malformed frame (not JSON: {exc}): {_preview(line)}") from None
    if type(frame) is not dict:
        raise ProtocolError(f"malformed frame (not a JSON object): {_preview(line)}")
    if type(frame.get("type")) is not str:
        raise ProtocolError(f'malformed frame (no "type"): {_preview(line)}')
    return frame


def _preview(line: bytes, limit: int = 80) -> str:
    text = line[:limit].decode("utf-8", "replace")
    return repr(text + ("…" if len(line) > limit else ""))


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


def parse_hello(frame: Mapping[str, Any]) -> Hello:
    """Check a hello frame; ProtocolError for a wrong frame, field or protocol version."""
    if frame.get("type") != "hello":
        raise ProtocolError(f"expected a hello frame first, got {frame.get('type')!r}")
    version = frame.get("protocol")
    if type(version) is not int:
        raise ProtocolError(f"hello without a protocol version: {version!r}")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            f"unknown protocol version {version} (asgispy {frame.get('asgispy', '?')}); "
            f"this collector speaks version {PROTOCOL_VERSION}: use the same asgispy on both sides"
        )
    producer = frame.get("producer")
    if type(producer) is not str or not producer or len(producer) > 64:
        raise ProtocolError(f"hello with an invalid producer tag: {producer!r}")
    pid = frame.get("pid", 0)
    started = frame.get("started", 0.0)
    token = frame.get("token")
    if type(pid) is not int or type(started) not in (int, float):
        raise ProtocolError("hello with an invalid pid or start time")
    if token is not None and type(token) is not str:
        raise ProtocolError("hello with a token that is not a string")
    return Hello(
        protocol=version,
        asgispy=str(frame.get("asgispy", "")),
        producer=producer,
        host=str(frame.get("host", "")),
        pid=pid,
        app=str(frame.get("app", "")),
        started=float(started),
        token=token,
    )


class FrameReader:
    """Splits a byte stream into frames, refusing any frame longer than ``max_frame``."""

    __slots__ = ("_pending", "_size", "max_frame")

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._pending: list[bytes] = []
        self._size = 0

    @property
    def buffered(self) -> int:
        """Bytes of a frame begun but not yet ended."""
        return self._size

    def feed(self, data: bytes) -> list[bytes]:
        """The complete frames ``data`` ends (empty lines skipped); keeps the unfinished rest."""
        if b"\n" not in data:
            self._size += len(data)
            if self._size > self.max_frame:
                raise ProtocolError(f"oversized frame (over {self.max_frame} bytes without a newline)")
            if data:
                self._pending.append(data)
            return []
        lines = data.split(b"\n")
        rest = lines.pop()
        if self._pending:
            self._pending.append(lines[0])
            lines[0] = b"".join(self._pending)
            self._pending.clear()
        self._size = len(rest)
        if rest:
            self._pending.append(rest)
        limit = self.max_frame
        for line in lines:
            if len(line) > limit:
                raise ProtocolError(f"oversized frame ({len(line)} bytes; the limit is {limit})")
        if self._size > limit:
            raise ProtocolError(f"oversized frame (over {limit} bytes without a newline)")
        return [line for line in lines if line]
