"""A WebSocket entry's messages: the handshake's answer, the frames, how it ended.

Chrome, mitmproxy and HTTP Toolkit write a WebSocket as an entry (status 101) with its frames
in ``_webSocketMessages``: ``type`` is the browser's side (``send``: the client sent it, so the
app received it), ``opcode`` 1 for text and 2 for binary (``data`` in base64). Control frames
(close, ping, pong) are not ASGI messages and are left out. Frame times are epoch seconds from
most tools (epoch milliseconds from Playwright); Chrome writes its own monotonic clock, so
there they keep their spacing and start when the handshake ended. Who closed the connection,
and with which code, is rarely in a HAR: without it no close is invented.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from asgispy.imports.har_fields import header_value, object_of
from asgispy.imports.har_file import EntryError

__all__ = ["websocket_events"]

#: Headers of a 101 answer that the server writes for the handshake, not the app.
_HANDSHAKE = frozenset(
    {
        b"upgrade",
        b"connection",
        b"sec-websocket-accept",
        b"sec-websocket-protocol",
        b"sec-websocket-extensions",
    }
)
_CLOSED = re.compile(r"closed with code (\d+)")
#: Frame times further than this from the entry's start are not epoch seconds.
_EPOCH_SLACK = 86400.0

Event = dict[str, Any]


def _frame(message: Any, number: int) -> tuple[str, float | None, dict[str, Any] | None, int | None]:
    """(direction, time, ASGI message or None for a control frame, cut size)."""
    where = f"_webSocketMessages[{number}]"
    if not isinstance(message, dict) or message.get("type") not in ("send", "receive"):
        raise EntryError(f"{where} has no type send or receive")
    data = message.get("data")
    if not isinstance(data, str):
        raise EntryError(f"{where}.data is missing")
    opcode = message.get("opcode", 1)
    when = message.get("time")
    time = float(when) if isinstance(when, (int, float)) and not isinstance(when, bool) else None
    sent_by_client = message["type"] == "send"
    direction = "receive" if sent_by_client else "send"
    kind = "websocket.receive" if sent_by_client else "websocket.send"
    cut = message.get("_cut") if isinstance(message.get("_cut"), int) else None
    if opcode == 1:
        return direction, time, {"type": kind, "text": data}, cut
    if opcode == 2:
        try:
            payload = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise EntryError(f"{where}.data is not valid base64 ({exc})") from exc
        return direction, time, {"type": kind, "bytes": payload}, cut
    return direction, time, None, None


def _times(frames: list[float | None], started: float, opened: float) -> tuple[list[float], bool]:
    """Each frame's time since the start; True when the HAR's times were not epoch seconds."""
    known = [t for t in frames if t is not None]
    if known and all(abs(t / 1000 - started) < _EPOCH_SLACK for t in known):
        frames = [t / 1000 if t is not None else None for t in frames]  # Playwright: milliseconds
        known = [t / 1000 for t in known]
    if known and all(abs(t - started) < _EPOCH_SLACK for t in known):
        out, last = [], opened
        for t in frames:
            last = max(last, t - started) if t is not None else last
            out.append(last)
        return out, False
    first = min(known) if known else 0.0
    out, last = [], opened
    for t in frames:
        last = max(last, opened + (t - first)) if t is not None else last
        out.append(last)
    return out, bool(known)


def websocket_events(
    entry: dict[str, Any],
    response: dict[str, Any],
    headers: list[tuple[bytes, bytes]],
    status: int,
    started: float,
    opened: float,
    close_code: int | None,
) -> tuple[list[Event], float, list[str]]:
    """The events of a WebSocket entry, its duration and notes; ``opened``: when the handshake
    was answered (seconds since the start)."""
    events: list[Event] = [{"direction": "receive", "t": 0.0, "message": {"type": "websocket.connect"}}]
    notes: list[str] = []
    if status == 0:
        events.append(
            {"direction": "receive", "t": opened, "message": {"type": "websocket.disconnect", "code": 1006}}
        )
        return events, opened, ["the HAR holds no answer to the handshake"]
    if status != 101:
        return events + _denial(response, headers, status, opened), opened, notes
    accept: dict[str, Any] = {"type": "websocket.accept"}
    subprotocol = header_value(headers, b"sec-websocket-protocol")
    if subprotocol:
        accept["subprotocol"] = subprotocol.decode("latin-1")
    extra = [(k, v) for k, v in headers if k not in _HANDSHAKE]
    if extra:
        accept["headers"] = extra
    events.append({"direction": "send", "t": opened, "message": accept})
    raw = entry.get("_webSocketMessages") or []
    if not isinstance(raw, list):
        raise EntryError("_webSocketMessages is not a list")
    frames = [_frame(m, n) for n, m in enumerate(raw)]
    kept = [f for f in frames if f[2] is not None]
    if len(kept) < len(frames):
        left = len(frames) - len(kept)
        notes.append(f"{left} control frame{'s' if left != 1 else ''} (close, ping, pong) left out")
    kept.sort(key=lambda f: f[1] if f[1] is not None else 0.0)
    times, relative = _times([f[1] for f in kept], started, opened)
    if relative:
        notes.append("the HAR's frame times are on the browser's own clock: spacing kept, start unknown")
    for (direction, _, message, cut), t in zip(kept, times, strict=True):
        event: Event = {"direction": direction, "t": t, "message": message}
        if cut is not None and message is not None:
            event["cut"] = {"text" if "text" in message else "bytes": cut}
        events.append(event)
    end = times[-1] if times else opened
    if close_code is None:
        comment = entry.get("comment")
        match = _CLOSED.search(comment) if isinstance(comment, str) else None
        close_code = int(match.group(1)) if match else None
    if close_code is not None:
        events.append(
            {
                "direction": "receive",
                "t": end,
                "message": {"type": "websocket.disconnect", "code": close_code},
            }
        )
    else:
        notes.append("how the WebSocket closed is not in the HAR")
    return events, end, notes


def _denial(
    response: dict[str, Any], headers: list[tuple[bytes, bytes]], status: int, t: float
) -> list[Event]:
    """A handshake refused: a bare 403 is the app's close before accept, else its own response."""
    content = object_of(response, "content")
    text = content.get("text")
    if status == 403 and not text and not headers:
        return [{"direction": "send", "t": t, "message": {"type": "websocket.close", "code": 1000}}]
    body = b""
    if isinstance(text, str):
        if content.get("encoding") == "base64":
            try:
                body = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise EntryError(f"response.content.text is not valid base64 ({exc})") from exc
        else:
            body = text.encode("utf-8")
    start = {"type": "websocket.http.response.start", "status": status, "headers": headers}
    return [
        {"direction": "send", "t": t, "message": start},
        {"direction": "send", "t": t, "message": {"type": "websocket.http.response.body", "body": body}},
    ]
