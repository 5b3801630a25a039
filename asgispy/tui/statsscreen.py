"""The statistics screen (``S``): per route figures over what the filter shows, and two plots.

A table of groups (count, errors, 4xx, latency percentiles), the latency histogram of the group
the cursor is on, and requests and errors over time. It follows the traffic: a store change
marks it stale, and a timer recomputes at most twice a second (less often when that is slow),
once the dashboard has applied the change to its list (so the figures are those of the
connections the list shows).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from asgispy.analysis.stats import GROUPINGS, Grouping, GroupStats, series, table, total
from asgispy.exports.stats_text import COLUMNS
from asgispy.store.store import Change
from asgispy.tui.statsplots import LatencyPlot, TrafficPlot

if TYPE_CHECKING:
    from asgispy.tui.app import Dashboard

__all__ = ["StatsScreen"]


class StatsScreen(Screen[None]):
    """Statistics over the connections the dashboard's filter shows; Esc goes back."""

    BINDINGS = [
        Binding("escape", "dismiss", "Back"),
        Binding("g", "cycle_grouping", "Group by"),
        Binding("slash", "change_filter", "Filter"),
    ]

    def __init__(self, dashboard: Dashboard, by: Grouping = "route", interval: float = 0.5) -> None:
        super().__init__()
        self.dashboard = dashboard
        self.by: Grouping = by
        self.interval = interval
        #: the rows shown, in order; the key the cursor is on
        self.groups: list[GroupStats] = []
        self.selected: str | None = None
        self._stale = True
        self._next = 0.0
        self._unsubscribe: Callable[[], None] | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="stats-title")
        yield DataTable(id="stats-table", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="stats-plots"):
            yield LatencyPlot(id="stats-latency")
            yield TrafficPlot(id="stats-traffic")
        yield Footer()

    @property
    def table(self) -> DataTable[str | Text]:
        return self.query_one("#stats-table", DataTable)

    def on_mount(self) -> None:
        self._add_columns()
        self._unsubscribe = self.dashboard.store.subscribe(self._on_change)
        self.recompute()
        self.set_interval(self.interval, self._tick)
        self.table.focus()

    def on_unmount(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _on_change(self, change: Change) -> None:
        self._stale = True

    def _tick(self) -> None:
        # Wait for the dashboard to apply what changed (it does ten times a second, not while
        # paused), and for the quiet time the last recomputation earned.
        if self._stale and not self.dashboard.pending and time.monotonic() >= self._next:
            self.recompute()

    def recompute(self) -> None:
        """Work out the table and the plots again from the connections the list shows.

        Over 50,000 connections this takes a fifth of a second; the next one waits at least four
        times as long as this one took, so a busy store costs a fifth of a core at most.
        """
        began = time.monotonic()
        self._stale = False
        conns = self.dashboard.connections.visible_connections()
        self.groups = table(conns, self.by)
        everything = total(conns)
        flags = self.dashboard.status.flags
        shown = f"filter: {flags.filter}" if flags.filter else "no filter"
        self.query_one("#stats-title", Static).update(
            Text.assemble(
                ("statistics ", "bold"),
                f"· {everything.count} requests, {everything.errors} errors · {shown} · by {self.by}",
                ("   g: group by · /: filter · Esc: back", "dim"),
            )
        )
        self._fill_table()
        self.query_one(TrafficPlot).show(series(conns, buckets=40))
        self._show_latency()
        took = time.monotonic() - began
        self._next = time.monotonic() + 4 * took

    def _fill_table(self) -> None:
        grid = self.table
        keep = self.selected
        grid.clear()
        for group in self.groups:
            grid.add_row(Text(group.key), *(cell(group) for _, cell in COLUMNS), key=group.key)
        keys = [g.key for g in self.groups]
        if keep in keys:
            grid.move_cursor(row=keys.index(keep), animate=False)
        elif keys:
            self.selected = keys[0]
            grid.move_cursor(row=0, animate=False)
        else:
            self.selected = None

    def _show_latency(self) -> None:
        group = next((g for g in self.groups if g.key == self.selected), None)
        self.query_one(LatencyPlot).show(group)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value
        if key is not None and key != self.selected:
            self.selected = key
            self._show_latency()

    def action_change_filter(self) -> None:
        """Back to the list with the filter bar open: S again shows the figures of the new filter."""
        self.dismiss()
        self.dashboard.action_filter()

    def action_cycle_grouping(self) -> None:
        self.by = GROUPINGS[(GROUPINGS.index(self.by) + 1) % len(GROUPINGS)]
        self.table.clear(columns=True)
        self._add_columns()
        self.selected = None
        self.recompute()

    def _add_columns(self) -> None:
        grid = self.table
        grid.add_column(self.by, key="key")
        for title, _ in COLUMNS:
            grid.add_column(title, key=title)
