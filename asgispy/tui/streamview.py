"""A connection's traffic read the way people think of it, one line per item, growing live.

Server-sent events and JSON lines parsed out of a streamed response, a WebSocket conversation
frame by frame, and a request body that came in many chunks: each item with the time it
crossed the ASGI boundary. The event tree shows them under the connection, beside the raw
messages; :class:`StreamFollower` turns only what is new into lines on each update, so a long
stream costs a little per new chunk.
"""

from __future__ import annotations

from typing import Any

import orjson
from rich.text import Text

from asgispy.analysis.streams import NDJSONParser, SSEParser, StreamRecord, parser_for, stream_kind_of
from asgispy.exports.line import format_duration, format_size
from asgispy.model.connection import Connection
from asgispy.model.event import Event

__all__ = ["MAX_LINES", "StreamFollower", "stream_views"]

#: Lines shown per view; past it the title counts the rest (the messages list has them all).
MAX_LINES = 2000
_PREVIEW = 100


def _preview(text: str) -> str:
    text = text.replace("\r", "").replace("\n", "⏎")
    return text if len(text) <= _PREVIEW else text[: _PREVIEW - 1] + "…"


def _json_text(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return repr(value)


def _at(t: float) -> tuple[str, str]:
    return (f"+{format_duration(t)}".rjust(10), "dim")


def _record_line(record: StreamRecord) -> Text:
    """One server-sent event, control block, comment or JSON line."""
    line = Text.assemble(_at(record.t), "  ")
    if record.kind == "comment":
        line.append(f": {_preview(record.data)}", style="dim italic")
        return line
    if record.kind == "control":
        # No event fires, so the app's listeners never see it: say what the browser kept.
        line.append("(no event)".ljust(10), style="bold")
        if record.id == "":
            line.append(" id cleared", style="cyan")
        elif record.id is not None:
            line.append(f" id={record.id}", style="cyan")
        if record.retry is not None:
            line.append(f" retry={record.retry}ms", style="cyan")
        line.append("  kept for the next reconnect", style="dim")
        return line
    if record.kind == "event":
        line.append(record.event.ljust(10), style="bold magenta")
        if record.id is not None:
            line.append(f" id={record.id}", style="cyan")
        if record.retry is not None:
            line.append(f" retry={record.retry}ms", style="cyan")
        line.append("  ")
    if record.error is not None:
        line.append(f"✖ not JSON ({record.error}): ", style="bold red")
        line.append(_preview(record.data))
    elif record.is_json:
        line.append(_preview(_json_text(record.json)), style="green")
    else:
        line.append(_preview(record.data))
    if record.incomplete:
        line.append("  (the stream ended here, mid-record)", style="bold yellow")
    return line


def _frame_line(event: Event) -> Text | None:
    """One WebSocket frame, accept, close or disconnect, as a line of the conversation."""
    kind = event.type
    arrow = ("→", "bold cyan") if event.direction == "receive" else ("←", "bold magenta")
    line = Text.assemble(arrow, " ", _at(event.t), "  ")
    if kind in ("websocket.receive", "websocket.send"):
        message = event.message if isinstance(event.message, dict) else {}
        text, data = message.get("text"), message.get("bytes")
        if isinstance(text, str):
            line.append(format_size(event.payload_size).rjust(8), style="bold")
            try:
                value = orjson.loads(text)
            except orjson.JSONDecodeError:
                line.append("  text  ", style="dim")
                line.append(repr(_preview(text)))
            else:
                line.append("  json  ", style="dim")
                line.append(_preview(_json_text(value)), style="green")
        elif isinstance(data, bytes):
            line.append(format_size(event.payload_size).rjust(8), style="bold")
            line.append("  hex   ", style="dim")
            shown = data[:32].hex(" ")
            line.append(shown + (" …" if len(data) > 32 else ""))
        else:
            line.append("(no payload)", style="yellow")
    elif kind in ("websocket.close", "websocket.disconnect"):
        message = event.message if isinstance(event.message, dict) else {}
        code = message.get("code", 1000 if kind == "websocket.close" else None)
        line.append("close" if kind == "websocket.close" else "disconnect", style="bold")
        if code is not None:
            line.append(f" {code}")
        if message.get("reason"):
            line.append(f"  {message['reason']!r}")
    elif kind == "websocket.accept":
        line.append("accept", style="bold green")
        message = event.message if isinstance(event.message, dict) else {}
        if message.get("subprotocol"):
            line.append(f"  subprotocol {message['subprotocol']}")
    else:
        return None
    return line


def _chunk_line(event: Event, previous: float | None) -> Text:
    """One chunk of a request body: its size, when it came, and how long the app waited."""
    line = Text.assemble(_at(event.t), "  ", (format_size(event.payload_size).rjust(8), "bold"))
    if previous is not None:
        line.append(f"  after {format_duration(event.t - previous)}", style="dim")
    if event.wait is not None and event.wait >= 0.001:
        line.append(f"  the app waited {format_duration(event.wait)}", style="yellow")
    message = event.message if isinstance(event.message, dict) else {}
    if message.get("more_body"):
        line.append("  more_body", style="dim")
    return line


def stream_views(conn: Connection) -> list[str]:
    """The views that fit ``conn`` so far: ``upload`` (a request body in several chunks), and
    ``sse``, ``ndjson`` (a streamed response) or ``websocket`` (its conversation)."""
    if conn.type == "websocket":
        return ["websocket"]
    if conn.type != "http":
        return []
    views = []
    # Asked on every redraw of a connection that may hold thousands of chunks: stop at the second.
    requests = (e for e in conn.events if e.type == "http.request")
    if next(requests, None) is not None and next(requests, None) is not None:
        views.append("upload")
    kind = stream_kind_of(conn)
    if kind is not None:
        views.append(kind)
    return views


class StreamFollower:
    """One stream view of a connection (see :func:`stream_views`): its new lines since the
    last look."""

    def __init__(self, conn: Connection, kind: str) -> None:
        self.connection = conn
        self.kind = kind
        self._parser: SSEParser | NDJSONParser | None = None
        self._seen = 0  # events looked at
        self._items = 0  # items found
        self._shown = 0  # lines given out
        self._last_chunk: float | None = None
        self._closed = False

    @property
    def title(self) -> Text:
        names = {
            "sse": ("server-sent events", "event"),
            "ndjson": ("JSON lines", "line"),
            "websocket": ("conversation", "frame"),
            "upload": ("request body chunks", "chunk"),
        }
        name, unit = names.get(self.kind, ("stream", "item"))
        title = Text.assemble((name, "bold"), f"  {self._items:,} {unit}{'s' if self._items != 1 else ''}")
        if self._items > self._shown:
            title.append(f"  (the first {self._shown:,} shown)", style="dim")
        return title

    def update(self) -> list[Text]:
        """Lines for what the connection gained since the last call (none past MAX_LINES)."""
        conn = self.connection
        events = conn.events
        lines: list[Text] = []
        kind = self.kind
        for event in events[self._seen :]:
            if kind == "websocket":
                line = _frame_line(event)
                if line is not None:
                    self._add(lines, line)
            elif kind == "upload":
                if event.type == "http.request":
                    self._add(lines, _chunk_line(event, self._last_chunk))
                    self._last_chunk = event.t
            elif event.direction == "send" and event.type == "http.response.body":
                parser = self._parser
                if parser is None:
                    parser = self._parser = parser_for(kind)
                message = event.message if isinstance(event.message, dict) else {}
                body = message.get("body") or b""
                for record in parser.feed(body if isinstance(body, bytes) else b"", event.t):
                    self._add(lines, _record_line(record))
        self._seen = len(events)
        if conn.outcome != "open" and not self._closed and self._parser is not None:
            self._closed = True
            for record in self._parser.close():
                self._add(lines, _record_line(record))
        return lines

    def _add(self, lines: list[Text], line: Text) -> None:
        self._items += 1
        if self._shown < MAX_LINES:
            self._shown += 1
            lines.append(line)
