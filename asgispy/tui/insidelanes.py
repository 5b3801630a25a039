"""The timeline's waterfall of what the app did inside a connection: one lane per outgoing call
and SQL statement, a bar from its start to its end, and a lane of marks for log records at
WARNING or worse; past :data:`MAX_LANES`, the rest share one summary lane.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from asgispy.analysis.repeats import TIMES, statement_shape
from asgispy.model.connection import Connection
from asgispy.model.inside import Inside, LogRecord, OutgoingCall, Query

__all__ = ["MAX_LANES", "inside_end", "inside_lanes"]

MAX_LANES = 8
_BAR = "▬"
_MARK = "▲"


def inside_end(conn: Connection) -> float:
    """The latest end of anything done inside (the axis must reach it)."""
    return max((item.end for item in conn.inside), default=0.0)


def _cells(items: list[Inside], width: int, end: float) -> str:
    cells = [" "] * width
    for item in items:
        first = max(0, min(int(item.t / end * width), width - 1))
        last = max(first, min(int(item.end / end * width), width - 1))
        for cell in range(first, last + 1):
            cells[cell] = _BAR
    return "".join(cells)


def _title(item: Inside) -> str:
    if isinstance(item, OutgoingCall):
        host = urlsplit(item.url).hostname or "call"
        return "→ " + ("local" if host in ("127.0.0.1", "::1", "localhost") else host)
    return "sql"


def _style(item: Inside) -> str:
    if isinstance(item, OutgoingCall):
        return "bold red" if item.error or (item.status or 0) >= 500 else "blue"
    return "red" if isinstance(item, Query) and item.error else "magenta"


def inside_lanes(conn: Connection, width: int, end: float) -> list[tuple[str, str, str]]:
    """``(title, style, cells)`` for each lane to draw: each outgoing call, each statement shape
    (its repeats on one lane: an N+1 reads as a row of short bars), then the warnings."""
    if end <= 0:
        return []
    groups: dict[str, list[Inside]] = {}
    for item in conn.inside:
        if isinstance(item, OutgoingCall):
            groups[f"call {len(groups)}"] = [item]
        elif isinstance(item, Query):
            groups.setdefault("sql " + statement_shape(item.statement), []).append(item)
    ordered = sorted(groups.values(), key=lambda items: items[0].t)
    lanes = []
    for items in ordered[:MAX_LANES]:
        title = _title(items[0]) + (f" {TIMES}{len(items)}" if len(items) > 1 else "")
        style = (
            "bold red"
            if any(_style(i) == "bold red" or _style(i) == "red" for i in items)
            else _style(items[0])
        )
        lanes.append((title, style, _cells(items, width, end)))
    rest = [item for items in ordered[MAX_LANES:] for item in items]
    if rest:
        lanes.append((f"+{len(rest)}", "dim", _cells(rest, width, end)))
    warnings = [i for i in conn.inside if isinstance(i, LogRecord) and i.levelno >= 30]
    if warnings:
        cells = [" "] * width
        for item in warnings:
            cells[max(0, min(int(item.t / end * width), width - 1))] = _MARK
        worst = max(i.levelno for i in warnings)
        lanes.append(("log", "bold red" if worst >= 40 else "bold yellow", "".join(cells)))
    return lanes
