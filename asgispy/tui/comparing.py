"""Comparing two connections in the dashboard: mark one (m), select another, see what changed (d).

The comparison itself is :func:`asgispy.replay.compare.compare` (as ``asgispy diff`` and
``asgispy replay`` use it); this is the dashboard's side: which one is marked, and the screen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from asgispy.model.connection import Connection
from asgispy.tui.screens import DiffScreen

if TYPE_CHECKING:
    from asgispy.tui.app import Dashboard

__all__ = ["Comparison"]


class Comparison:
    """The marked connection of one dashboard, and the diff of another with it."""

    def __init__(self, app: Dashboard) -> None:
        self.app = app
        self.marked: str | None = None

    def mark(self, conn: Connection | None) -> None:
        if conn is None:
            self.app.notify("Select a connection first", severity="warning")
            return
        self.marked = conn.id
        self.app.notify(
            f"marked {conn.method or conn.type} {conn.target}: select another and press d", timeout=4
        )

    def diff(self, conn: Connection | None) -> None:
        from asgispy.replay.compare import compare, difference_lines, label

        app = self.app
        marked = app.store.get(self.marked) if self.marked else None
        if marked is None or conn is None:
            app.notify("Mark a connection with m first, then select another and press d", severity="warning")
            return
        lines = difference_lines(compare(marked, conn))
        app.push_screen(DiffScreen(f"{label(marked)}  ({marked.id})  →  {label(conn)}  ({conn.id})", lines))
