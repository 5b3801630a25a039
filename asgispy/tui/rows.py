"""What a row of the connection list says: its columns, its text and its colour.

Plain functions of a connection, apart from the widget that draws them, so that the text of
a row can be tested, measured (benchmarks/bench_dashboard.py) and kept in step with the
header without a screen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from asgispy.exports.line import format_duration, format_size
from asgispy.model.connection import Connection

__all__ = [
    "COLUMN_SETS",
    "MARK_WIDTH",
    "Column",
    "Outcome",
    "header_text",
    "lifespan_steps",
    "outcome_class",
    "row_text",
    "violation_mark",
]


@dataclass(frozen=True)
class Column:
    title: str
    width: int
    right: bool = False


# Fixed columns; path and route share what is left of the width.
#: The first cell of a row marks a connection that broke a protocol rule.
MARK_WIDTH = 1
_TIME = Column("time", 12)
_WORKER = Column("worker", 7, right=True)
_TYPE = Column("type", 4)
_METHOD = Column("method", 7)
_STATUS = Column("stat", 4, right=True)
_DURATION = Column("duration", 9, right=True)
_TTFB = Column("TTFB", 8, right=True)
_UP = Column("↑ req", 9, right=True)
_DOWN = Column("↓ resp", 9, right=True)
_LAST = Column("last byte", 9, right=True)
_GAP = Column("max gap", 8, right=True)
_BLOCKED = Column("blocked", 8, right=True)
_WAITED = Column("waited", 8, right=True)

#: The measures shown after the status, by name (``o`` switches between them).
COLUMN_SETS: dict[str, tuple[Column, ...]] = {
    "sizes": (_DURATION, _TTFB, _UP, _DOWN),
    "timing": (_DURATION, _TTFB, _LAST, _GAP, _BLOCKED, _WAITED),
}

_MEASURES: dict[Column, Callable[[Connection], str]] = {}


def _seconds(value: float | None) -> str:
    return format_duration(value) if value is not None else ""


#: After a time that leaves out a breakpoint's hold (the timeline shows the hold itself).
HELD_MARK = "‖"


def _app_seconds(conn: Connection, value: float | None) -> str:
    """The app's share of ``value``; marked when a hold was left out of it."""
    shown = conn.app_time(value)
    if shown is None:
        return ""
    return format_duration(shown) + (HELD_MARK if shown != value else "")


def _fixed(columns: str) -> int:
    fixed = (_TIME, _WORKER, _TYPE, _METHOD, _STATUS, *COLUMN_SETS[columns])
    return MARK_WIDTH + 1 + sum(c.width + 1 for c in fixed)


_TYPE_NAMES = {"http": "HTTP", "websocket": "WS", "lifespan": "LIFE"}


class Outcome:
    """The row colours, one component class each (so a theme or the .tcss can restyle them)."""

    PROGRESS = "connection-list--progress"
    SUCCESS = "connection-list--success"
    REDIRECT = "connection-list--redirect"
    CLIENT_ERROR = "connection-list--client-error"
    SERVER_ERROR = "connection-list--server-error"
    ERROR = "connection-list--error"
    CUT = "connection-list--cut"
    PLAIN = "connection-list--plain"


def outcome_class(conn: Connection) -> str:
    """Which colour a connection's row takes: by outcome first, then by status."""
    outcome = conn.outcome
    if outcome == "open":
        return Outcome.PROGRESS
    if outcome == "exception":
        return Outcome.ERROR
    if outcome in ("cut off", "cancelled"):
        return Outcome.CUT
    status = conn.status
    if status is None:
        if conn.type == "lifespan" and any(e.type.endswith(".failed") for e in conn.events):
            return Outcome.ERROR
        return Outcome.PLAIN
    if status >= 500:
        return Outcome.SERVER_ERROR
    if status >= 400:
        return Outcome.CLIENT_ERROR
    if status >= 300:
        return Outcome.REDIRECT
    return Outcome.SUCCESS


def _widths(total: int, columns: str = "sizes") -> tuple[int, int]:
    """Path and route widths for a row ``total`` cells wide."""
    rest = max(total - _fixed(columns) - 1, 8)
    if rest < 40:
        return rest, 0
    route = min(rest * 2 // 5, 40)
    return rest - route, route


def _cell(text: str, width: int, right: bool = False) -> str:
    if len(text) > width:
        return text[: max(width - 1, 0)] + "…" if width else ""
    return text.rjust(width) if right else text.ljust(width)


_STEPMARK_WIDTHS = {"complete": "✓", "failed": "✗"}


def lifespan_steps(conn: Connection) -> str:
    """``startup ✓ shutdown ✓``: how far the app's lifespan got."""
    steps: list[str] = []
    for event in conn.events:
        step = event.type.removeprefix("lifespan.")
        phase, _, result = step.partition(".")
        if result and steps and steps[-1] == phase:
            steps[-1] = f"{phase} {_STEPMARK_WIDTHS.get(result, result)}"
        else:
            steps.append(step)
    return "  ".join(steps)


def violation_mark(conn: Connection) -> str:
    """``✖`` when the connection broke an error rule, ``⚠`` for a warning, ``·`` for a notice."""
    worst = ""
    for violation in conn.violations:
        if violation.severity == "error":
            return "✖"
        if violation.severity == "warning":
            worst = "⚠"
        elif not worst:
            worst = "·"
    return worst or " "


def row_text(conn: Connection, width: int, pid: int = 0, columns: str = "sizes", held: bool = False) -> str:
    """The row of ``conn`` as plain text ``width`` cells wide (``held``: waiting at a breakpoint)."""
    path_w, route_w = _widths(width, columns)
    started = conn.started
    clock = time.strftime("%H:%M:%S", time.localtime(started)) + f".{int(started % 1 * 1000):03d}"
    kind = _TYPE_NAMES.get(conn.type, conn.type.upper()[:4])
    if conn.type == "lifespan":
        method = ""
        path = lifespan_steps(conn) or "(waiting)"
    else:
        method = conn.method or ""
        path = conn.target or conn.path
    if held:
        status = "HELD"
    elif conn.outcome == "open":
        status = str(conn.status) if conn.status else "…"
    elif conn.outcome == "exception" and conn.status is None:
        status = "ERR"
    else:
        status = str(conn.status) if conn.status is not None else "---"
    worker = str(pid) if pid else conn.producer[-6:]
    cells = [
        violation_mark(conn),
        _cell(clock, _TIME.width),
        _cell(worker, _WORKER.width, True),
        _cell(kind, _TYPE.width),
        _cell(method, _METHOD.width),
        _cell(path, path_w),
        _cell(status, _STATUS.width, True),
    ]
    for column in COLUMN_SETS[columns]:
        cells.append(_cell(_MEASURES[column](conn), column.width, column.right))
    if route_w:
        route = conn.route or ""
        if conn.outcome == "exception" and conn.error is not None:
            route = f"{conn.error.type}" + (f" {route}" if route else "")
        cells.append(_cell(route, route_w))
    return " ".join(cells)


_MEASURES.update(
    {
        _DURATION: lambda c: _app_seconds(c, c.duration) if c.duration is not None else "…",
        _TTFB: lambda c: _app_seconds(c, c.ttfb),
        _UP: lambda c: format_size(c.request_bytes),
        _DOWN: lambda c: format_size(c.response_bytes),
        _LAST: lambda c: _seconds(c.last_byte),
        _GAP: lambda c: _seconds(c.max_gap),
        _BLOCKED: lambda c: _seconds(c.blocked),
        _WAITED: lambda c: _seconds(c.waited),
    }
)


def header_text(width: int, columns: str = "sizes") -> str:
    path_w, route_w = _widths(width, columns)
    cells = [
        " " * MARK_WIDTH,
        _cell(_TIME.title, _TIME.width),
        _cell(_WORKER.title, _WORKER.width, True),
        _cell(_TYPE.title, _TYPE.width),
        _cell(_METHOD.title, _METHOD.width),
        _cell("path", path_w),
        _cell(_STATUS.title, _STATUS.width, True),
    ]
    cells += [_cell(c.title, c.width, c.right) for c in COLUMN_SETS[columns]]
    if route_w:
        cells.append(_cell("route", route_w))
    return " ".join(cells)
