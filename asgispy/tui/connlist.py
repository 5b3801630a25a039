"""The connection list: one row per connection, drawn line by line over a list of ids.

It holds no widgets per row, only the ids of the connections that pass the filter, in
arrival order; Textual asks for the lines on screen and only those are formatted. Holding
50,000 connections costs a list of ids, and a batch of changes costs a refresh of the
rows in view, so the list keeps up with a busy app. What a row says is
:mod:`asgispy.tui.rows`; this module keeps the ids, the cursor and the drawing.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Static

from asgispy.model.connection import Connection
from asgispy.store.store import Store
from asgispy.tui.rows import COLUMN_SETS, MARK_WIDTH, Outcome, header_text, outcome_class, row_text

__all__ = ["ConnectionList", "ListHeader"]

Predicate = Callable[[Connection], bool]


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

    def next_columns(self, header: ListHeader) -> str:
        """Switch to the next set of columns (sizes, timings), the header with it; its name."""
        names = list(COLUMN_SETS)
        self.columns = names[(names.index(self.columns) + 1) % len(names)]
        header.columns = self.columns
        header.refresh()
        self.refresh()
        return self.columns

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
        pid = producer.info.pid if producer is not None else 0
        text = row_text(conn, width, pid, self.columns, conn.id in self.store.held)
        text = text.ljust(width)[:width]
        mark = text[:MARK_WIDTH]
        if mark == " ":
            return Strip([Segment(text, style)], width)
        mark_style = self.get_component_rich_style(
            "connection-list--violation" if mark != "·" else "connection-list--notice"
        )
        return Strip([Segment(mark, style + mark_style), Segment(text[MARK_WIDTH:], style)], width)


def _accepts(predicate: Predicate, conn: Connection) -> bool:
    try:
        return bool(predicate(conn))
    except Exception:
        return False
