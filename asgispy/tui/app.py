"""The dashboard app: the connection list, the event tree of the selected one, and the bars.

The store tells the app of every change synchronously; the app only notes which
connections changed and applies them in batches on a timer (10 Hz), so a burst of a
thousand requests costs one redraw, not a thousand. The collector that feeds the store,
the served app's child process and the demo's traffic all run in the app's own event loop
as workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import Footer

from asgispy.exports.eventlog import EventLog
from asgispy.exports.formats import EXTENSIONS, TITLES, Format
from asgispy.store.store import Change, Store
from asgispy.tui.child import ChildProcess
from asgispy.tui.commands import DashboardCommands
from asgispy.tui.connlist import ConnectionList, ListHeader
from asgispy.tui.eventtree import EventTree
from asgispy.tui.filterbar import FilterBar
from asgispy.tui.logpanel import LogPanel
from asgispy.tui.rows import COLUMN_SETS
from asgispy.tui.screens import DiffScreen, ExportChoice, ExportScreen, HelpScreen
from asgispy.tui.statusbar import StatusBar
from asgispy.tui.timeline import Timeline

__all__ = ["Dashboard", "LiveSource"]

W = TypeVar("W", bound=Widget)

#: uvicorn's "Uvicorn running on http://127.0.0.1:8000 (Press CTRL+C to quit)"
_RUNNING_ON = re.compile(r"running on (\S+)")
#: Past this many changes held while paused, resuming rebuilds the list instead of replaying them.
_MAX_PENDING = 20_000


class LiveSource(Protocol):
    """What feeds the store live: the collector (``start``/``stop``, listening ``addresses``)."""

    @property
    def addresses(self) -> Sequence[object]: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


ChildFactory = Callable[[Sequence[str]], ChildProcess]
Background = Callable[["Dashboard"], Awaitable[None]]


class Dashboard(App[int]):
    """asgispy's terminal dashboard over one :class:`Store`."""

    CSS_PATH = "dashboard.tcss"
    TITLE = "asgispy"
    COMMANDS = App.COMMANDS | {DashboardCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter"),
        Binding("f", "toggle_follow", "Follow"),
        Binding("p", "toggle_pause", "Pause"),
        Binding("x", "clear", "Clear"),
        Binding("e", "export", "Export"),
        Binding("c", "copy_curl", "Copy curl"),
        Binding("l", "toggle_log", "App output"),
        Binding("t", "toggle_timeline", "Timeline"),
        Binding("o", "cycle_columns", "Columns"),
        Binding("m", "mark", "Mark", show=False),
        Binding("d", "diff", "Diff with marked", show=False),
        Binding("a", "expand_all", "Expand all", show=False),
        Binding("tab", "focus_next", "Next pane", show=False),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
    ]

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
        self.export_dir = export_dir or Path.cwd()
        self.refresh_interval = refresh_interval
        self.paused = False
        self._show_log = show_log or child is not None
        self._opened: dict[str, None] = {}
        self._changed: set[str] = set()
        self._evicted: set[str] = set()
        self._cleared = False
        self._overflow = False
        self._producers_changed = False
        self._log_lines: list[tuple[str, str]] = []
        self._unsubscribe: Callable[[], None] | None = None
        self._stopped = False
        self.live_error: str | None = None
        self._marked: str | None = None
        self._export_format: Format = "json"
        self._export_retry: Path | None = None

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

    # The widgets, looked up once: timers and store callbacks may still fire while the app
    # unmounts, when a query would no longer find them.

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
        self.set_interval(0.5, self._update_status)
        # The store holds millions of long-lived objects (1.6 million at 50,000 connections): one
        # full garbage collection over them stops the screen for over a second. Frozen once a
        # second, they are left out of collections; they hold no reference cycles, so evicted
        # connections are still freed (by reference counting) as soon as they go.
        self.set_interval(1.0, self._freeze_heap)
        self._update_status()
        if self.live is not None:
            self._go_live()
        else:
            for task in self.background:
                self._run_background(task)

    # Feeding ------------------------------------------------------------------------------

    def _on_change(self, change: Change) -> None:
        """Called by the store on every change: note it, draw it later (see :meth:`_tick`)."""
        kind = change.kind
        conn = change.connection
        if kind == "event" or kind == "close":
            if conn is not None:
                self._changed.add(conn.id)
        elif kind == "open":
            if conn is not None:
                self._opened[conn.id] = None
        elif kind == "evict":
            if conn is not None:
                self._evicted.add(conn.id)
                self._opened.pop(conn.id, None)
                self._changed.discard(conn.id)
        elif kind == "producer":
            self._producers_changed = True
        elif kind == "clear":
            self._cleared = True
            self._opened.clear()
            self._changed.clear()
            self._evicted.clear()
        if self.paused and len(self._opened) + len(self._changed) + len(self._evicted) > _MAX_PENDING:
            self._overflow = True
            self._opened.clear()
            self._changed.clear()
            self._evicted.clear()

    @property
    def pending(self) -> int:
        return len(self._opened) + len(self._changed) + len(self._evicted) + int(self._cleared)

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
        if self._producers_changed:
            self._producers_changed = False
            self._update_status()
        if not (self._opened or self._changed or self._evicted or self._cleared or self._overflow):
            return
        opened, changed, evicted = list(self._opened), self._changed, self._evicted
        cleared, overflow = self._cleared, self._overflow
        self._opened, self._changed, self._evicted = {}, set(), set()
        self._cleared = self._overflow = False
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

    def _update_status(self) -> None:
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
        live = self.live
        assert live is not None
        try:
            await live.start()
        except Exception as exc:
            self.live_error = f"cannot listen: {exc}"
            self.status.flags.listening = self.live_error
            self.notify(str(exc), title="Cannot listen", severity="error", timeout=30)
            return
        addresses = [str(a) for a in live.addresses]
        self.status.flags.listening = ", ".join(addresses)
        self._update_status()
        if self.child_factory is not None:
            self.child = self.child_factory(addresses)
            self._run_child(self.child)
        for task in self.background:
            self._run_background(task)

    @work(group="child")
    async def _run_child(self, child: ChildProcess) -> None:
        self.status.flags.child = "app starting"
        try:
            code = await child.run(self._child_line)
        except OSError as exc:
            self.status.flags.child = "app did not start"
            self._show_log_panel()
            self.notify(
                f"{child.argv[0]}: {exc}", title="The app did not start", severity="error", timeout=30
            )
            return
        if child.stopping:
            return
        self.status.flags.child = f"app exited ({code})"
        self._show_log_panel()
        reason = _last_error(child.last_lines)
        self.notify(
            reason or "see the app output below",
            title=f"The app stopped (exit code {code})",
            severity="error",
            timeout=60,
        )

    def _child_line(self, line: str) -> None:
        serving = _RUNNING_ON.search(line)
        if serving is not None:
            self.status.flags.child = f"serving {serving.group(1)}"
        elif "Error loading ASGI app" in line:
            self._show_log_panel()
        if len(self._log_lines) < 10_000:
            self._log_lines.append((line, ""))

    def _show_log_panel(self) -> None:
        self.log_panel.display = True
        self._show_log = True

    @work(group="background")
    async def _run_background(self, task: Background) -> None:
        try:
            await task(self)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.notify(f"{type(exc).__name__}: {exc}", title="Background task failed", severity="error")

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
        if self.child is not None:
            await self.child.stop()
        if self.live is not None and self.live_error is None:
            with contextlib.suppress(Exception):  # the screen is going away: nothing left to tell
                await self.live.stop()
        if self.event_log is not None:
            # After the collector stopped: what it marked cut off is in the log too.
            with contextlib.suppress(OSError):
                self.event_log.close()

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
        self._update_status()

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
        self._update_status()

    def on_filter_bar_closed(self, message: FilterBar.Closed) -> None:
        bar = self.query_one(FilterBar)
        if not bar.text:
            bar.display = False
        self.connections.focus()

    def action_toggle_follow(self) -> None:
        self.connections.set_follow(not self.connections.follow)
        self._update_status()

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        if not self.paused:
            self.flush()
        self._update_status()
        self.notify("screen paused; still collecting" if self.paused else "resumed", timeout=2)

    def action_clear(self) -> None:
        self.store.clear()
        self.flush()
        self.events_tree.show(None)
        self.timeline.show(None)
        self._update_status()

    def action_toggle_log(self) -> None:
        panel = self.log_panel
        panel.display = not panel.display
        self._show_log = panel.display

    def action_toggle_timeline(self) -> None:
        timeline = self.timeline
        timeline.display = not timeline.display
        if timeline.display:
            timeline.refresh_timeline()

    def action_cycle_columns(self) -> None:
        names = list(COLUMN_SETS)
        columns = names[(names.index(self.connections.columns) + 1) % len(names)]
        self.connections.columns = columns
        header = self.query_one(ListHeader)
        header.columns = columns
        header.refresh()
        self.connections.refresh()
        self.notify(f"columns: {columns}", timeout=2)

    def action_mark(self) -> None:
        conn = self.connections.selected
        if conn is None:
            self.notify("Select a connection first", severity="warning")
            return
        self._marked = conn.id
        self.notify(f"marked {conn.method or conn.type} {conn.target}: select another and press d", timeout=4)

    def action_diff(self) -> None:
        from asgispy.replay.compare import compare, difference_lines, label

        marked = self.store.get(self._marked) if self._marked else None
        conn = self.connections.selected
        if marked is None or conn is None:
            self.notify("Mark a connection with m first, then select another and press d", severity="warning")
            return
        lines = difference_lines(compare(marked, conn))
        self.push_screen(DiffScreen(f"{label(marked)}  ({marked.id})  →  {label(conn)}  ({conn.id})", lines))

    def action_focus_tree(self) -> None:
        self.events_tree.focus()

    def action_expand_all(self) -> None:
        self.events_tree.expand_everything()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_copy_curl(self) -> None:
        from asgispy.exports.curl import to_curl

        conn = self.connections.selected
        if conn is None:
            self.notify("Select a connection first", severity="warning")
            return
        if conn.type != "http":
            self.notify(f"curl replays HTTP requests; this is a {conn.type} connection", severity="warning")
            return
        command = to_curl(conn)
        self.copy_to_clipboard(command)
        self.notify(command, title="Copied as curl", timeout=8)

    def action_export(self) -> None:
        conns = self.connections.visible_connections()
        if not conns:
            self.notify("Nothing to export", severity="warning")
            return
        fmt = self._export_format
        # After a failed write the same name is offered again: nothing typed is lost.
        default = self._export_retry or self.export_dir / (
            time.strftime("asgispy-%Y%m%d-%H%M%S") + EXTENSIONS[fmt]
        )

        def chosen(choice: ExportChoice | None) -> None:
            if choice is not None:
                self._export_format = choice.format
                self.export(conns, choice.path, choice.format)

        screen = ExportScreen(
            default,
            len(conns),
            total=len(self.store),
            filter_text=self.query_one(FilterBar).text,
            format=fmt,
            base=self.export_dir,
        )
        self.push_screen(screen, chosen)

    @work(exclusive=True, group="export")
    async def export(self, conns: list[Any], path: Path, fmt: Format = "json") -> Path | None:
        """Write ``conns`` to ``path`` in ``fmt`` (see :mod:`asgispy.exports.formats`), in a thread.

        Success and failure are both told in a notification; a failed path is offered again.
        """
        from asgispy.codec.sessionfile import write_bytes_atomically
        from asgispy.exports.formats import export_bytes

        session = self.store.session(conns)
        comment = f"exported from the asgispy dashboard ({self.source})" if self.source else None

        def write() -> tuple[Path, int]:
            # Built in the thread too: 50,000 connections take a second or two to serialise.
            made = export_bytes(session, fmt, comment=comment)
            return write_bytes_atomically(path, made.data), made.count

        try:
            written, count = await asyncio.to_thread(write)
        except Exception as exc:  # a failed export must never take the dashboard and its data down
            self._export_retry = path
            os_error = isinstance(exc, OSError) and exc.strerror
            reason = os_error or f"{type(exc).__name__}: {exc}"
            self.notify(
                f"{path}: {reason}\nNothing was written; e offers the same name again.",
                title="Export failed",
                severity="error",
                timeout=15,
            )
            return None
        self._export_retry = None
        what = f"{count:,} connection{'s' if count != 1 else ''}"
        left_out = len(conns) - count
        if left_out:
            what += f" ({left_out:,} with no place in {TITLES[fmt]} left out)"
        self.notify(f"{what} → {written}", title=f"Exported as {TITLES[fmt]}")
        return written


def _last_error(lines: Sequence[str]) -> str:
    for line in reversed(lines):
        if "Error" in line or "error" in line or "Exception" in line:
            return line.strip()
    return lines[-1].strip() if lines else ""
