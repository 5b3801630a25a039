"""The timeline of one connection: when each message crossed the ASGI boundary, drawn as lanes.

A waterfall of messages over the connection's life, one lane per direction plus the time the
app spent blocked in ``send()`` and waiting in ``receive()`` (and the time asgispy held it at a
breakpoint, which is not the app's), so that a stream held back and
released at once (a burst at the right edge after a flat line) or a slow upload (a long wait
lane) shows at a glance. It is drawn by hand, as a few lines of text: what it plots is a few
hundred marks on a time axis, which a plotting library's line charts do not fit better, and
text keeps it cheap to redraw as the connection grows.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich.text import Text
from textual.widgets import Static

from asgispy.exports.line import format_duration
from asgispy.model.connection import Connection
from asgispy.model.event import Event
from asgispy.model.holds import hold_intervals
from asgispy.tui.insidelanes import inside_end, inside_lanes

__all__ = ["Timeline", "timeline_text"]

_LABEL = 8  # width of the lane titles
#: Time in a call shorter than this is the call's own cost, not waiting: not drawn.
NOTABLE_WAIT = 0.001
_BARS = " ▁▂▃▄▅▆▇█"
_MARK = "│"  # a message with no payload (start, accept, close, disconnect)
_BLOCKED = "━"
_WAITED = "┄"
_HELD = "‖"  # held at a breakpoint by asgispy: time that is not the app's
_PAYLOAD_TYPES = frozenset(
    {
        "http.request",
        "http.response.body",
        "websocket.receive",
        "websocket.send",
        "websocket.http.response.body",
    }
)


def _end(conn: Connection) -> float:
    """The right edge of the axis: the connection's duration, or how long it has run so far."""
    end = 0.0
    for event in conn.events:
        end = max(end, event.t + (event.wait or 0.0 if event.direction == "send" else 0.0))
    if conn.duration is not None:
        end = max(end, conn.duration)
    elif conn.outcome == "open" and conn.started:
        end = max(end, time.time() - conn.started)
    return max(end, inside_end(conn))


def _lane(events: Sequence[Event], width: int, end: float) -> list[tuple[str, str]]:
    """Cells of one direction's lane: payload bytes per cell as bars, other messages as marks."""
    sizes = [0] * width
    marks = [False] * width
    for event in events:
        cell = min(int(event.t / end * width), width - 1) if end > 0 else 0
        if event.type in _PAYLOAD_TYPES and event.payload_size:
            sizes[cell] += event.payload_size
        else:
            marks[cell] = True
    top = max(sizes) or 1
    cells: list[tuple[str, str]] = []
    for size, mark in zip(sizes, marks, strict=True):
        if size:
            cells.append((_BARS[max(1, round(size / top * 8))], "bold"))
        elif mark:
            cells.append((_MARK, "bold"))
        else:
            cells.append((" ", ""))
    return cells


def _spans(events: Sequence[Event], width: int, end: float, before: bool, glyph: str) -> str | None:
    """A lane of the intervals spent inside ``send()`` (after ``t``) or ``receive()`` (before)."""
    cells = [" "] * width
    seen = False
    for event in events:
        wait = event.wait
        if not wait or wait < NOTABLE_WAIT or end <= 0:
            continue
        start, stop = (event.t - wait, event.t) if before else (event.t, event.t + wait)
        first = max(0, min(int(start / end * width), width - 1))
        last = max(first, min(int(stop / end * width), width - 1))
        for cell in range(first, last + 1):
            cells[cell] = glyph
        seen = True
    return "".join(cells) if seen else None


def _holds(conn: Connection, width: int, end: float) -> str | None:
    """A lane of the intervals asgispy held the connection at a breakpoint (each entry's ``t``
    is when the hold ended, ``held`` how long it lasted)."""
    cells = [" "] * width
    seen = False
    if end <= 0:
        return None
    for start, stop in hold_intervals(conn.interventions):
        first = max(0, min(int(start / end * width), width - 1))
        last = max(first, min(int(stop / end * width), width - 1))
        for cell in range(first, last + 1):
            cells[cell] = _HELD
        seen = True
    return "".join(cells) if seen else None


def _axis(width: int, end: float) -> str:
    left, middle, right = "0", format_duration(end / 2), format_duration(end)
    line = [" "] * width
    line[: len(left)] = left
    mid = max(len(left) + 1, width // 2 - len(middle) // 2)
    if mid + len(middle) < width - len(right) - 1:
        line[mid : mid + len(middle)] = middle
    line[width - len(right) :] = right
    return "".join(line)[:width]


#: The summary's times that are moments since the start (a hold before them is left out).
_MOMENTS = frozenset({"TTFB", "first byte", "last byte"})


def timing_summary(conn: Connection) -> Text:
    """``TTFB 12 ms · first byte 13 ms · last byte 812 ms · largest gap 790 ms · ...``; with a
    breakpoint's hold, how long it was and the app's own share of the times it is part of."""
    held = conn.held
    parts: list[tuple[str, float | None]] = [
        ("held by asgispy", held or None),
        ("TTFB", conn.ttfb),
        ("first byte", conn.first_byte),
        ("last byte", conn.last_byte),
        ("largest gap", conn.max_gap),
        ("blocked in send", conn.blocked),
        ("waited in receive", conn.waited),
    ]
    text = Text()
    for name, value in parts:
        if value is None:
            continue
        if text:
            text.append(" · ", style="dim")
        text.append(f"{name} ")
        text.append(format_duration(value), style="bold yellow" if name == "held by asgispy" else "bold")
        own = conn.app_time(value) if held and name in _MOMENTS else value
        if own != value and own is not None:
            text.append(f" (app {format_duration(own)})", style="dim")
    return text


def timeline_text(conn: Connection, width: int) -> Text:
    """The timeline of ``conn`` drawn ``width`` cells wide."""
    plot = max(width - _LABEL, 10)
    end = _end(conn)
    received = [e for e in conn.events if e.direction == "receive"]
    sent = [e for e in conn.events if e.direction == "send"]
    text = timing_summary(conn)
    if text:
        text.append("\n")

    def lane(title: str, style: str, cells: list[tuple[str, str]]) -> None:
        text.append(title.ljust(_LABEL), style=style)
        for glyph, cell_style in cells:
            text.append(glyph, style=f"{style} {cell_style}".strip() if glyph != " " else "")
        text.append("\n")

    lane("→ recv", "cyan", _lane(received, plot, end))
    lane("← send", "magenta", _lane(sent, plot, end))
    blocked = _spans(sent, plot, end, before=False, glyph=_BLOCKED)
    if blocked:
        text.append("blocked".ljust(_LABEL), style="yellow")
        text.append(blocked + "\n", style="yellow")
    data = [e for e in received if e.type in ("http.request", "websocket.receive")]
    waited = _spans(data, plot, end, before=True, glyph=_WAITED)
    if waited:
        text.append("waiting".ljust(_LABEL), style="dim cyan")
        text.append(waited + "\n", style="dim cyan")
    for title, style, cells in inside_lanes(conn, plot, end):
        text.append(title[: _LABEL - 1].ljust(_LABEL), style=style)
        text.append(cells + "\n", style=style)
    holds = _holds(conn, plot, end)
    if holds:
        text.append("held".ljust(_LABEL), style="bold yellow")
        text.append(holds + "\n", style="yellow")
    text.append(" " * _LABEL + _axis(plot, end), style="dim")
    return text


class Timeline(Static):
    """The selected connection's timeline, redrawn as it grows (``t`` shows or hides it)."""

    DEFAULT_CSS = """
    Timeline {
        height: auto;
        padding: 0 1;
    }
    """

    def __init__(self, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.connection: Connection | None = None

    def show(self, conn: Connection | None) -> None:
        self.connection = conn
        self.refresh_timeline()

    def toggle(self) -> None:
        """Show it (drawn for now) or hide it."""
        self.display = not self.display
        if self.display:
            self.refresh_timeline()

    def refresh_timeline(self) -> None:
        conn = self.connection
        if conn is None:
            self.update("")
            return
        width = self.size.width - 2 if self.size.width > 12 else 80
        self.update(timeline_text(conn, width))

    def on_resize(self) -> None:
        self.refresh_timeline()
