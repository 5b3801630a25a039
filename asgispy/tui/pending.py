"""What changed in the store since the dashboard last drew: noted as the store tells it, taken
in one batch by the timer.

The store tells its subscribers of every change synchronously; noting one costs a set or dict
insert, so a burst of a thousand requests costs one redraw, not a thousand. While the screen is
paused the notes grow; past a bound they are dropped and the list is rebuilt on resume instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from asgispy.store.store import Change

__all__ = ["MAX_PENDING", "Batch", "PendingChanges"]

#: Past this many changes held while paused, resuming rebuilds the list instead of replaying them.
MAX_PENDING = 20_000


@dataclass
class Batch:
    """The changes taken at once: connections opened (in order), changed and evicted."""

    opened: list[str] = field(default_factory=list)
    changed: set[str] = field(default_factory=set)
    evicted: set[str] = field(default_factory=set)
    cleared: bool = False
    overflow: bool = False


class PendingChanges:
    """The notes: which connections opened, changed or went, and whether producers or the
    connections held at breakpoints changed."""

    def __init__(self) -> None:
        self._opened: dict[str, None] = {}
        self._changed: set[str] = set()
        self._evicted: set[str] = set()
        self._cleared = False
        self._overflow = False
        self.producers_changed = False
        self.held_changed = False

    def __len__(self) -> int:
        return len(self._opened) + len(self._changed) + len(self._evicted) + int(self._cleared)

    def __bool__(self) -> bool:
        return bool(self._opened or self._changed or self._evicted or self._cleared or self._overflow)

    def note(self, change: Change, paused: bool) -> None:
        """Called by the store on every change (synchronously): note it, draw it later."""
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
            self.producers_changed = True
        elif kind == "held":
            self.held_changed = True
            if conn is not None:
                self._changed.add(conn.id)
        elif kind == "clear":
            self._cleared = True
            self._opened.clear()
            self._changed.clear()
            self._evicted.clear()
        if paused and len(self._opened) + len(self._changed) + len(self._evicted) > MAX_PENDING:
            self._overflow = True
            self._opened.clear()
            self._changed.clear()
            self._evicted.clear()

    def take(self) -> Batch:
        """Everything noted since the last take, and start afresh."""
        batch = Batch(list(self._opened), self._changed, self._evicted, self._cleared, self._overflow)
        self._opened, self._changed, self._evicted = {}, set(), set()
        self._cleared = self._overflow = False
        return batch
