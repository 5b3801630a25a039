"""A WebSocket connection's part of its HAR entry: the handshake response and the frames.

Chrome's DevTools reads and writes a WebSocket as an entry with status 101 and its frames in
``_webSocketMessages``; a handshake the app refused keeps its denial response instead. The
entry around these (request, start time, asgispy's fields) is assembled in
:mod:`asgispy.exports.har`, as for HTTP.
"""

from __future__ import annotations

import base64
from typing import Any, NamedTuple

from asgispy.exports.har_content import mime_type, text_or_base64
from asgispy.exports.har_headers import header_list, http_version, response_cookies, status_text
from asgispy.exports.har_timings import timings
from asgispy.model.connection import Connection
from asgispy.model.event import Event

__all__ = ["WebSocketExchange", "websocket_exchange"]


class WebSocketExchange(NamedTuple):
    """What a WebSocket entry holds beyond what every entry does."""

    response: dict[str, Any]
    timings: dict[str, float]
    messages: list[dict[str, Any]]


def websocket_exchange(conn: Connection) -> WebSocketExchange:
    """The response, the timings (until accepted, then open) and the frames of ``conn``."""
    accepted: float | None = None
    status = conn.status or 0
    messages: list[dict[str, Any]] = []
    last = 0.0
    for event in conn.events:
        last = event.t
        if event.type == "websocket.accept" and accepted is None:
            accepted = event.t
        elif event.type in ("websocket.receive", "websocket.send"):
            frame = _frame(conn, event)
            if frame is not None:
                messages.append(frame)
    headers = conn.response_headers if status == 101 else []
    response: dict[str, Any] = {
        "status": status,
        "statusText": status_text(status),
        "httpVersion": http_version(conn),
        "cookies": response_cookies(headers)[0],
        "headers": header_list(headers),
        "content": {"size": 0, "mimeType": "x-unknown", "text": ""},
        "redirectURL": "",
        "headersSize": -1,
        "bodySize": 0,
    }
    if status not in (0, 101):
        # Refused before accept: a plain 403, or the app's own denial response.
        headers = conn.response_headers
        body = b"".join(
            e.message.get("body") or b"" for e in conn.events if e.type == "websocket.http.response.body"
        )
        response["headers"] = header_list(headers)
        text, b64 = text_or_base64(body)
        response["content"] = {"size": len(body), "mimeType": mime_type(headers), "text": text}
        if b64:
            response["content"]["encoding"] = b64
    end = conn.duration if conn.duration is not None else last
    opened = accepted if accepted is not None else end
    return WebSocketExchange(response, timings(0.0, opened, end - opened), messages)


def _frame(conn: Connection, event: Event) -> dict[str, Any] | None:
    message = event.message
    text = message.get("text")
    data = message.get("bytes")
    # Chrome's point of view: "send" is what the client sent, that is what the app received.
    kind = "send" if event.direction == "receive" else "receive"
    frame: dict[str, Any] = {"type": kind, "time": round(conn.started + event.t, 6)}
    if isinstance(text, str):
        frame.update(opcode=1, data=text)
    elif isinstance(data, bytes):
        frame.update(opcode=2, data=base64.b64encode(data).decode("ascii"))
    else:
        return None
    if event.cut:
        frame["_cut"] = max(event.cut.values())
    return frame
