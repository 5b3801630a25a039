"""The status bar: where the dashboard listens, who is attached, and how busy it is."""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Static

from asgispy.store.store import Store

__all__ = ["StatusBar", "StatusFlags"]


@dataclass
class StatusFlags:
    """What the app tells the bar besides the store's own counts."""

    source: str = ""
    shown: int = 0
    follow: bool = True
    paused: bool = False
    pending: int = 0
    filter: str = ""
    child: str = ""
    live: bool = False
    listening: str = ""
    #: breakpoints set from this dashboard
    breakpoints: int = 0


class StatusBar(Static):
    """One line, redrawn a few times a second; events/s is measured between two redraws."""

    def __init__(self, store: Store, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.store = store
        self.flags = StatusFlags()
        self.rate = 0.0
        self._last_events = store.events_total
        self._last_time = time.monotonic()

    def sample(self) -> None:
        """Measure the event rate since the last sample, then redraw."""
        now = time.monotonic()
        total = self.store.events_total
        elapsed = now - self._last_time
        if elapsed > 0:
            self.rate = max(total - self._last_events, 0) / elapsed
        self._last_events, self._last_time = total, now
        self.update(self.text())

    def text(self) -> Text:
        store, flags = self.store, self.flags
        attached = sum(1 for p in store.producers.values() if p.connected)
        parts: list[Text | str | tuple[str, str]] = []
        if flags.source:
            parts += [(flags.source, "bold"), " │ "]
        if flags.child:
            parts += [(flags.child, "bold red" if "exited" in flags.child else "bold green"), " │ "]
        if flags.live:
            parts += [f"{attached} producer{'s' if attached != 1 else ''} attached", " │ "]
        else:
            known = len(store.producers)
            parts += [f"{known} producer{'s' if known != 1 else ''} recorded", " │ "]
        count = len(store)
        parts.append(f"{count:,} connection{'s' if count != 1 else ''}")
        if flags.filter:
            parts.append((f" ({flags.shown:,} shown)", "bold"))
        parts += [" │ ", f"{self.rate:,.0f} events/s", " │ "]
        dropped = store.dropped
        parts.append((f"{dropped:,} dropped", "bold red") if dropped else "0 dropped")
        counts = store.violation_counts()
        if counts["error"] or counts["warning"]:
            parts.append(" │ ")
            if counts["error"]:
                parts.append((f"✖ {counts['error']:,} breaking ASGI rules", "bold red"))
            if counts["warning"]:
                parts.append(("  " if counts["error"] else "") + f"⚠ {counts['warning']:,} with warnings")
        if store.evicted:
            parts += [" │ ", (f"{store.evicted:,} evicted", "dim")]
        if flags.paused:
            parts += ["  ", (" PAUSED ", "reverse bold yellow")]
            if flags.pending:
                parts.append((f" {flags.pending:,} changes waiting", "yellow"))
        if store.held:
            parts += ["  ", (f" {len(store.held)} HELD ", "reverse bold magenta"), (" h", "dim")]
        elif flags.breakpoints:
            parts += [
                "  ",
                (f"{flags.breakpoints} breakpoint{'s' if flags.breakpoints != 1 else ''}", "magenta"),
            ]
        parts += ["  ", (" FOLLOW ", "reverse bold green") if flags.follow else ("follow off", "dim")]
        if flags.listening:
            # Last, being the longest: a narrow terminal cuts the socket path, not the counts.
            style = "bold red" if flags.listening.startswith("cannot") else "dim"
            parts += [
                " │ ",
                (flags.listening if style != "dim" else f"listening on {flags.listening}", style),
            ]
        return Text.assemble(*parts)
