"""The dashboard app: the connection list, the event tree of the selected one, and the bars.

The store tells the app of every change synchronously; the app only notes which
connections changed and applies them in batches on a timer (10 Hz), so a burst of a
thousand requests costs one redraw, not a thousand. The collector that feeds the store,
the served app's child process and the demo's traffic all run in the app's own event loop
as workers.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from textual import work
from textual.app import App, ComposeResult
from textual.binding import BindingType
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import Footer

from asgispy.exports.eventlog import EventLog
from asgispy.exports.formats import Format
from asgispy.store.store import Change, Store
from asgispy.tui.child import ChildProcess
from asgispy.tui.commands import DashboardCommands
from asgispy.tui.comparing import Comparison
from asgispy.tui.connlist import ConnectionList, ListHeader
from asgispy.tui.desk import Desk
from asgispy.tui.eventtree import EventTree
from asgispy.tui.exporting import Exporter
from asgispy.tui.filterbar import FilterBar
from asgispy.tui.intercepting import Intercepting, InterceptingKeys
from asgispy.tui.keys import DASHBOARD_KEYS
from asgispy.tui.logpanel import LogPanel
from asgispy.tui.pending import PendingChanges
from asgispy.tui.savedfilters import SavedFilterKeys
from asgispy.tui.screens import HelpScreen
from asgispy.tui.sources import (
    Background,
    ChildFactory,
    LiveSource,
    go_live,
    run_background,
    stop_sources,
    watch_child,
)
from asgispy.tui.statusbar import StatusBar
from asgispy.tui.timeline import Timeline

if TYPE_CHECKING:
    from asgispy.replay.inprocess import InProcess

__all__ = ["Dashboard"]

W = TypeVar("W", bound=Widget)


class Dashboard(InterceptingKeys, SavedFilterKeys, App[int]):
    """asgispy's terminal dashboard over one :class:`Store`."""

    CSS_PATH = "dashboard.tcss"
    TITLE = "asgispy"
    COMMANDS = App.COMMANDS | {DashboardCommands}
    BINDINGS: ClassVar[list[BindingType]] = list(DASHBOARD_KEYS)

    def __init__(
        self,
        store: Store,
        *,
        source: str = "",
        live: LiveSource | None = None,
        child: ChildFactory | None = None,
        background: Sequence[Background] = (),
        export_dir: Path | None = None,
        refresh_interval: float = 0.1,
        show_log: bool = False,
        event_log: str | Path | None = None,
        breakpoints: Sequence[tuple[str, str]] = (),
        break_timeout: float | None = None,
        in_process: InProcess | None = None,
    ) -> None:
        super().__init__()
        self.store = store
        #: ``--jsonl FILE``: every change also goes to an event log, which another process (a
        #: coding agent's ``asgispy mcp --session FILE``) follows. Opened first: a bad path fails
        #: here, before anything starts.
        self.event_log: EventLog | None = None
        if event_log is not None:
            self.event_log = EventLog(store, event_log, flush_every=0.2)
        self._widgets: dict[type[Widget], Widget] = {}
        self.source = source
        self.live = live
        self.child_factory = child
        self.child: ChildProcess | None = None
        self.background = list(background)
        self.refresh_interval = refresh_interval
        self.paused = False
        self._show_log = show_log or child is not None
        self._pending = PendingChanges()
        self._log_lines: list[tuple[str, str]] = []
        self._unsubscribe: Callable[[], None] | None = None
        self._stopped = False
        self.live_error: str | None = None
        self.comparison = Comparison(self)
        self.exporter = Exporter(self, export_dir or Path.cwd())
        #: breakpoints, held connections, resending (through the collector's control line)
        controller = live if live is not None and hasattr(live, "control") else None
        desk = Desk(store, controller, list(breakpoints), break_timeout)  # type: ignore[arg-type]
        self.intercepting = Intercepting(self, desk)
        #: ``asgispy open FILE --app APP``: resending goes to that app, in this process
        self.in_process = in_process

    # Layout -------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Vertical(id="main"):
            with Vertical(id="list-pane"):
                yield ListHeader(id="list-header")
                yield ConnectionList(self.store, id="connections")
            yield Timeline(id="timeline")
            yield EventTree(id="events")
            yield LogPanel(id="log")
        yield FilterBar(id="filter")
        yield StatusBar(self.store, id="status")
        yield Footer()

    # The widgets, looked up once: timers and store callbacks may still fire while unmounting.

    @property
    def connections(self) -> ConnectionList:
        return self._widget(ConnectionList)

    @property
    def events_tree(self) -> EventTree:
        return self._widget(EventTree)

    @property
    def timeline(self) -> Timeline:
        return self._widget(Timeline)

    @property
    def status(self) -> StatusBar:
        return self._widget(StatusBar)

    @property
    def log_panel(self) -> LogPanel:
        return self._widget(LogPanel)

    def _widget(self, kind: type[W]) -> W:
        found = self._widgets.get(kind)
        if found is None:
            found = self._widgets[kind] = self.query_one(kind)
        assert isinstance(found, kind)
        return found

    def on_mount(self) -> None:
        self.query_one("#list-pane").border_title = "connections"
        self.events_tree.border_title = "events"
        self.timeline.border_title = "timeline"
        self.log_panel.display = self._show_log
        self.query_one(FilterBar).display = False
        self.status.flags.source = self.source
        self.status.flags.live = self.live is not None
        self.connections.rebuild()
        self.connections.focus()
        self._unsubscribe = self.store.subscribe(self._on_change)
        self.set_interval(self.refresh_interval, self._tick)
        self.set_interval(0.5, self.update_status)
        # 50,000 connections are 1.6 million long-lived objects: a full collection over them stops
        # the screen for a second. Frozen each second, they are left out; with no cycles among them,
        # evicted connections are still freed by reference counting.
        self.set_interval(1.0, self._freeze_heap)
        self.update_status()
        if self.live is not None:
            self._go_live()
        else:
            for task in self.background:
                self.start_background(task)

    # Feeding ------------------------------------------------------------------------------

    def _on_change(self, change: Change) -> None:
        self._pending.note(change, self.paused)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _tick(self) -> None:
        """Apply the changes gathered since the last tick: one redraw per batch."""
        if self.paused:
            return
        self.flush()

    def flush(self) -> None:
        """Apply every pending change now (the timer does this ten times a second)."""
        if self._log_lines:
            lines, self._log_lines = self._log_lines, []
            panel = self.log_panel
            for line, style in lines:
                panel.add_line(line, style)
        pending = self._pending
        if pending.producers_changed or pending.held_changed:
            if pending.held_changed:
                self.intercepting.held_changed()
            if pending.producers_changed:
                self.intercepting.producers_changed()
            pending.producers_changed = pending.held_changed = False
            self.update_status()
        if not pending:
            return
        batch = pending.take()
        opened, changed, evicted = batch.opened, batch.changed, batch.evicted
        cleared, overflow = batch.cleared, batch.overflow
        connections = self.connections
        if overflow or cleared:
            connections.rebuild()
        else:
            connections.apply(opened, changed, evicted, cleared)
        tree = self.events_tree
        shown = tree.connection
        if shown is not None:
            if shown.id in evicted or cleared or self.store.get(shown.id) is not shown:
                tree.show(connections.selected)
                self.timeline.show(connections.selected)
            elif shown.id in changed or overflow:
                tree.grow(shown)
                self.timeline.refresh_timeline()
        self.status.flags.shown = len(connections.ids)

    def _freeze_heap(self) -> None:
        gc.freeze()

    def update_status(self) -> None:
        status = self.status
        flags = status.flags
        flags.follow = self.connections.follow
        flags.paused = self.paused
        flags.pending = self.pending
        flags.shown = len(self.connections.ids)
        status.sample()
        shown = self.timeline.connection
        if shown is not None and shown.outcome == "open" and self.timeline.display:
            self.timeline.refresh_timeline()  # its axis runs to now

    # Live sources: collector, child process, background tasks ------------------------------

    @work(exclusive=True, group="live")
    async def _go_live(self) -> None:
        await go_live(self)

    @work(group="child")
    async def run_child(self, child: ChildProcess) -> None:
        await watch_child(self, child)

    def child_line(self, line: str) -> None:
        """A line the served app printed: for the output panel."""
        if len(self._log_lines) < 10_000:
            self._log_lines.append((line, ""))

    def show_log_panel(self) -> None:
        self.log_panel.display = True
        self._show_log = True

    @work(group="background")
    async def start_background(self, task: Background) -> None:
        await run_background(self, task)

    def say(self, line: str, style: str = "dim") -> None:
        """Write a line of the dashboard's own (not the app's) to the output panel."""
        self._log_lines.append((line, style))

    async def shutdown(self) -> None:
        """Stop the child and the collector (idempotent; runs before the app exits)."""
        if self._stopped:
            return
        self._stopped = True
        if self._unsubscribe is not None:
            self._unsubscribe()
        self.workers.cancel_group(self, "background")
        await stop_sources(self)

    async def action_quit(self) -> None:
        await self.shutdown()
        self.exit(0)

    async def on_unmount(self) -> None:
        await self.shutdown()
        gc.unfreeze()

    # Selection ----------------------------------------------------------------------------

    def on_connection_list_selected(self, message: ConnectionList.Selected) -> None:
        conn = self.store.get(message.connection_id) if message.connection_id else None
        self.events_tree.show(conn)
        self.timeline.show(conn)

    def on_connection_list_opened(self, message: ConnectionList.Opened) -> None:
        self.events_tree.focus()

    def on_connection_list_follow_changed(self, message: ConnectionList.FollowChanged) -> None:
        self.update_status()

    # Actions ------------------------------------------------------------------------------

    def action_filter(self) -> None:
        bar = self.query_one(FilterBar)
        bar.display = True
        bar.input.focus()

    def action_clear_filter(self) -> None:
        bar = self.query_one(FilterBar)
        bar.input.value = ""
        bar.apply()
        bar.display = False
        self.connections.focus()

    def on_filter_bar_changed(self, message: FilterBar.Changed) -> None:
        predicate = message.predicate
        self.connections.set_filter(predicate if callable(predicate) else None)
        self.status.flags.filter = message.text
        self.status.flags.shown = len(self.connections.ids)
        selected = self.connections.selected
        if selected is not self.events_tree.connection:
            self.events_tree.show(selected)
            self.timeline.show(selected)
        self.update_status()

    def on_filter_bar_closed(self, message: FilterBar.Closed) -> None:
        bar = self.query_one(FilterBar)
        if not bar.text:
            bar.display = False
        self.connections.focus()

    def action_toggle_follow(self) -> None:
        self.connections.set_follow(not self.connections.follow)
        self.update_status()

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        if not self.paused:
            self.flush()
        self.update_status()
        self.notify("screen paused; still collecting" if self.paused else "resumed", timeout=2)

    def action_clear(self) -> None:
        self.store.clear()
        self.flush()
        self.events_tree.show(None)
        self.timeline.show(None)
        self.update_status()

    def action_toggle_log(self) -> None:
        panel = self.log_panel
        panel.display = not panel.display
        self._show_log = panel.display

    def action_toggle_timeline(self) -> None:
        self.timeline.toggle()

    def action_cycle_columns(self) -> None:
        columns = self.connections.next_columns(self.query_one(ListHeader))
        self.notify(f"columns: {columns}", timeout=2)

    def action_mark(self) -> None:
        self.comparison.mark(self.connections.selected)

    def action_diff(self) -> None:
        self.comparison.diff(self.connections.selected)

    def action_focus_tree(self) -> None:
        self.events_tree.focus()

    def action_expand_all(self) -> None:
        self.events_tree.expand_everything()

    def action_stats(self) -> None:
        from asgispy.tui.statsscreen import StatsScreen

        if not isinstance(self.screen, StatsScreen):
            self.push_screen(StatsScreen(self))

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_copy_curl(self) -> None:
        self.exporter.copy_curl(self.connections.selected)

    def action_export(self) -> None:
        self.exporter.ask()

    @work(exclusive=True, group="export")
    async def export(self, conns: list[Any], path: Path, fmt: Format = "json") -> Path | None:
        """Write ``conns`` to ``path`` in ``fmt`` (see :mod:`asgispy.exports.formats`), in a thread."""
        return await self.exporter.write(conns, path, fmt)
