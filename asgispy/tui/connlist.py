"""The connection list: one row per connection, drawn line by line over a list of ids.

It holds no widgets per row, only the ids of the connections that pass the filter, in
arrival order; Textual asks for the lines on screen and only those are formatted. Holding
50,000 connections costs a list of ids, and a batch of changes costs a refresh of the
rows in view, so the list keeps up with a busy app.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Static

from asgispy.exports.line import format_duration, format_size
from asgispy.model.connection import Connection
from asgispy.store.store import Store

__all__ = ["ConnectionList", "ListHeader", "Outcome", "outcome_class"]

Predicate = Callable[[Connection], bool]


@dataclass(frozen=True)
class Column:
    title: str
    width: int
    right: bool = False


# Fixed columns; path and route share what is left of the width. The first cell of a row marks
# a connection that broke a protocol rule.
_MARK = 1
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


def _fixed(columns: str) -> int:
    return (
        _MARK + 1 + sum(c.width + 1 for c in (_TIME, _WORKER, _TYPE, _METHOD, _STATUS, *COLUMN_SETS[columns]))
    )


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


_STEP_MARKS = {"complete": "✓", "failed": "✗"}


def lifespan_steps(conn: Connection) -> str:
    """``startup ✓ shutdown ✓``: how far the app's lifespan got."""
    steps: list[str] = []
    for event in conn.events:
        step = event.type.removeprefix("lifespan.")
        phase, _, result = step.partition(".")
        if result and steps and steps[-1] == phase:
            steps[-1] = f"{phase} {_STEP_MARKS.get(result, result)}"
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


def row_text(conn: Connection, width: int, pid: int = 0, columns: str = "sizes") -> str:
    """The row of ``conn`` as plain text ``width`` cells wide."""
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
    if conn.outcome == "open":
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
        _DURATION: lambda c: format_duration(c.duration) if c.duration is not None else "…",
        _TTFB: lambda c: _seconds(c.ttfb),
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
        " " * _MARK,
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


class ListHeader(Static):
    """The column titles above the list, laid out with the same widths as the rows."""

    columns = "sizes"

    def render(self) -> str:
        return header_text(self.size.width, self.columns)


class ConnectionList(ScrollView, can_focus=True):
    """Every connection that passes the filter, newest at the bottom; the cursor picks one."""

    BINDINGS = [
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home,g", "first", "First", show=False),
        Binding("end,G", "last", "Last (follow)", show=False),
        Binding("enter", "open", "Events", show=False),
    ]

    COMPONENT_CLASSES = {
        "connection-list--cursor",
        "connection-list--violation",
        "connection-list--notice",
        Outcome.PROGRESS,
        Outcome.SUCCESS,
        Outcome.REDIRECT,
        Outcome.CLIENT_ERROR,
        Outcome.SERVER_ERROR,
        Outcome.ERROR,
        Outcome.CUT,
        Outcome.PLAIN,
    }

    class Selected(Message):
        """The cursor moved to another connection (or to none)."""

        def __init__(self, connection_id: str | None) -> None:
            super().__init__()
            self.connection_id = connection_id

    class Opened(Message):
        """The user pressed enter on a connection: show its events."""

    class FollowChanged(Message):
        def __init__(self, follow: bool) -> None:
            super().__init__()
            self.follow = follow

    def __init__(self, store: Store, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.store = store
        self.ids: list[str] = []
        self.cursor = -1
        self.follow = True
        self._predicate: Predicate | None = None
        self._arrival: dict[str, int] = {}
        self._next = 0
        self._selected: str | None = None
        #: which measures the rows show (a key of COLUMN_SETS)
        self.columns = "sizes"

    # The data ------------------------------------------------------------------------------

    @property
    def selected(self) -> Connection | None:
        if 0 <= self.cursor < len(self.ids):
            return self.store.get(self.ids[self.cursor])
        return None

    def visible_connections(self) -> list[Connection]:
        """The connections that pass the filter, oldest first (what an export writes)."""
        get = self.store.get
        return [c for c in map(get, self.ids) if c is not None]

    def set_filter(self, predicate: Predicate | None) -> None:
        """Show only what ``predicate`` accepts, rebuilding the list from the store."""
        self._predicate = predicate
        self.rebuild()

    def rebuild(self) -> None:
        """Rebuild from the store: after a filter change, a clear, or a long pause."""
        keep = self._selected
        self._arrival = {}
        ids = []
        predicate = self._predicate
        for n, conn in enumerate(self.store.connections.values()):
            self._arrival[conn.id] = n
            if predicate is None or _accepts(predicate, conn):
                ids.append(conn.id)
        self._next = len(self._arrival)
        self.ids = ids
        self._place_cursor(keep)

    def apply(
        self, opened: Iterable[str], changed: Iterable[str], evicted: Iterable[str], cleared: bool
    ) -> None:
        """Apply a batch of store changes (gathered between two refreshes)."""
        keep = self._selected
        if cleared:
            self.ids = []
            self._arrival.clear()
        gone = {i for i in evicted if i in self._arrival}
        if gone:
            for i in gone:
                del self._arrival[i]
            self._remove(gone)
        predicate = self._predicate
        get = self.store.get
        appended = []
        for id in opened:
            conn = get(id)
            if conn is None:
                continue
            if id in self._arrival:  # sent again after a producer reconnected: now the newest
                self._remove({id})
            self._arrival[id] = self._next
            self._next += 1
            if predicate is None or _accepts(predicate, conn):
                appended.append(id)
        self.ids.extend(appended)
        if predicate is not None:
            # A filter may depend on what changed (status, outcome): rows come and go.
            shown = set(self.ids[-len(appended) :]) if appended else set()
            leaving = set()
            for id in changed:
                conn = get(id)
                if conn is None or id in shown:
                    continue
                now = _accepts(predicate, conn)
                was = self._is_visible(id)
                if was and not now:
                    leaving.add(id)
                elif now and not was:
                    self._insert(id)
            if leaving:
                self._remove(leaving)
        self._place_cursor(keep)

    def _is_visible(self, id: str) -> bool:
        return self._index_of(id) is not None

    def _insert(self, id: str) -> None:
        n = self._arrival[id]
        i = bisect.bisect_left(self.ids, n, key=lambda x: self._arrival.get(x, -1))
        self.ids.insert(i, id)

    def _remove(self, gone: set[str]) -> None:
        # Evictions are nearly always the oldest rows: cut the prefix when they are.
        k = 0
        ids = self.ids
        while k < len(ids) and ids[k] in gone:
            k += 1
        if k == len(gone) or k == len(ids):
            del ids[:k]
        else:
            self.ids = [i for i in ids if i not in gone]

    def _place_cursor(self, keep: str | None) -> None:
        """Put the cursor back on ``keep``, or on the newest row when following."""
        count = len(self.ids)
        self.virtual_size = Size(self.size.width, count)
        if self.follow and count:
            self._move(count - 1, scroll=True)
        elif keep is not None:
            index = self._index_of(keep)
            if index is None:
                self._move(min(self.cursor, count - 1), scroll=False)
            else:
                self.cursor = index
        else:
            self.cursor = min(self.cursor, count - 1)
        self.refresh()

    def _index_of(self, id: str) -> int | None:
        n = self._arrival.get(id)
        if n is None:
            return None
        i = bisect.bisect_left(self.ids, n, key=lambda x: self._arrival.get(x, -1))
        return i if i < len(self.ids) and self.ids[i] == id else None

    # The cursor ------------------------------------------------------------------------------

    def _move(self, index: int, scroll: bool = True) -> None:
        count = len(self.ids)
        index = max(min(index, count - 1), -1 if count == 0 else 0)
        self.cursor = index
        selected = self.ids[index] if index >= 0 else None
        if scroll and index >= 0:
            self._scroll_into_view(index)
        if selected != self._selected:
            self._selected = selected
            self.post_message(self.Selected(selected))
        self.refresh()

    def _scroll_into_view(self, index: int) -> None:
        height = self.scrollable_content_region.height
        top = int(self.scroll_y)
        if index < top:
            self.scroll_to(y=index, animate=False, immediate=True)
        elif height and index >= top + height:
            self.scroll_to(y=index - height + 1, animate=False, immediate=True)

    def set_follow(self, follow: bool) -> None:
        if follow != self.follow:
            self.follow = follow
            self.post_message(self.FollowChanged(follow))
        if follow and self.ids:
            self._move(len(self.ids) - 1)

    def _user_move(self, index: int) -> None:
        # Moving the cursor anywhere but the newest row stops following; reaching it resumes.
        count = len(self.ids)
        index = max(min(index, count - 1), 0)
        self.set_follow(count > 0 and index == count - 1)
        self._move(index)

    def select_id(self, id: str) -> bool:
        """Put the cursor on connection ``id`` as if the user had moved there; False if not shown."""
        index = self._index_of(id)
        if index is None:
            return False
        self._user_move(index)
        return True

    def action_cursor_up(self) -> None:
        self._user_move(self.cursor - 1)

    def action_cursor_down(self) -> None:
        self._user_move(self.cursor + 1)

    def action_page_up(self) -> None:
        self._user_move(self.cursor - max(self.scrollable_content_region.height - 1, 1))

    def action_page_down(self) -> None:
        self._user_move(self.cursor + max(self.scrollable_content_region.height - 1, 1))

    def action_first(self) -> None:
        self._user_move(0)

    def action_last(self) -> None:
        self._user_move(len(self.ids) - 1)

    def action_open(self) -> None:
        if self.cursor >= 0:
            self.post_message(self.Opened())

    async def _on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        index = int(self.scroll_y) + offset.y
        if 0 <= index < len(self.ids):
            self._user_move(index)
            if event.chain == 2:
                self.post_message(self.Opened())

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, len(self.ids))
        if self.follow and self.ids:
            self._scroll_into_view(len(self.ids) - 1)

    # Drawing -------------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        index = int(self.scroll_y) + y
        base = self.rich_style
        if index >= len(self.ids):
            return Strip.blank(width, base)
        conn = self.store.get(self.ids[index])
        if conn is None:
            return Strip.blank(width, base)
        style = base + self.get_component_rich_style(outcome_class(conn))
        if index == self.cursor:
            cursor = self.get_component_rich_style("connection-list--cursor")
            if not self.has_focus:
                cursor = Style(bgcolor=cursor.bgcolor, dim=False)
            style = style + cursor
        producer = self.store.producers.get(conn.producer)
        text = row_text(conn, width, producer.info.pid if producer is not None else 0, self.columns)
        text = text.ljust(width)[:width]
        mark = text[:_MARK]
        if mark == " ":
            return Strip([Segment(text, style)], width)
        mark_style = self.get_component_rich_style(
            "connection-list--violation" if mark != "·" else "connection-list--notice"
        )
        return Strip([Segment(mark, style + mark_style), Segment(text[_MARK:], style)], width)


def _accepts(predicate: Predicate, conn: Connection) -> bool:
    try:
        return bool(predicate(conn))
    except Exception:
        return False
