"""The handshake: a producer's ``hello``, the collector's ``welcome`` or ``error``, and version 1.

These maps are said once per connection, before any connection frame, and decide whether the
two sides go on: apart from the frame readers, which run for every message. Version 1 spoke
newline-delimited JSON; each side recognises the other's first bytes and refuses it with a
message that says what to do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from asgispy.version import __version__
from asgispy.wire.protocol import PROTOCOL_VERSION, SUPPORTED, ProtocolError, as_float

__all__ = [
    "Hello",
    "control_frame",
    "error_frame",
    "hello_frame",
    "is_v1",
    "parse_hello",
    "v1_error_line",
    "v1_message",
    "welcome_frame",
]


def hello_frame(
    producer: str,
    host: str,
    pid: int,
    app: str,
    started: float,
    token: str | None = None,
    control: bool = False,
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
    if control:
        frame["control"] = True  # a viewer may hold, edit and answer this app's connections
    return frame


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
    control: bool = False


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
    started = as_float(started, "a start time")
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
        control=frame.get("control") is True,
    )


def _version() -> str:

    return __version__


def _versions() -> str:
    return " or ".join(str(v) for v in SUPPORTED)


def welcome_frame() -> dict[str, Any]:

    return {"type": "welcome", "protocol": PROTOCOL_VERSION, "asgispy": __version__}


def control_frame(request: dict[str, Any]) -> dict[str, Any]:
    """What a viewer asks of a producer that said it may be controlled."""
    return {"type": "control", "request": request}


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
