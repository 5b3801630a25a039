"""The cursor of ``asgispy mcp``: which connections are new since the agent last looked.

:class:`Watch` follows a store and numbers each connection when it begins and when it ends;
that number comes back in the tools' results, and waits start from it.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Callable

from asgispy.model.connection import Connection
from asgispy.store.store import Change, Store

__all__ = ["Watch"]


class Watch:
    """Numbers a store's connections as they begin and end: the cursor waits start from.

    A connection gets its number once, so a producer that sends its history again after a
    reconnect (or a session file read again) does not make old connections look new; only
    a different ending (cut off, then completed in a newer file) counts as news.
    """

    def __init__(self) -> None:
        self.tick = 0
        #: the cursor of the last result handed to the agent: where a wait starts by default
        self.seen = 0
        self._began: dict[str, int] = {}
        self._ended: dict[str, tuple[int, str]] = {}
        self._order: list[int] = []  # ticks of _ended_ids, rising
        self._ended_ids: list[str] = []
        self._wakers: set[asyncio.Event] = set()
        self._unsubscribe: Callable[[], None] | None = None

    def follow(self, store: Store) -> None:
        """Watch ``store`` (and stop watching the previous one)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._unsubscribe = store.subscribe(self._changed)

    def keep_only(self, store: Store) -> None:
        """Forget connections ``store`` does not hold (after a session file was read again)."""
        held = store.connections
        self._began = {i: t for i, t in self._began.items() if i in held}
        self._ended = {i: e for i, e in self._ended.items() if i in held}
        self._reorder()

    def mark(self) -> int:
        """The cursor now, remembered as the one the agent has seen."""
        self.seen = self.tick
        return self.tick

    def changed_at(self, conn: Connection) -> int:
        """The cursor at the connection's latest news (began, or ended)."""
        ended = self._ended.get(conn.id)
        return max(self._began.get(conn.id, 0), ended[0] if ended else 0)

    def began_at(self, conn: Connection) -> int:
        return self._began.get(conn.id, 0)

    def ended_after(self, store: Store, since: int) -> list[Connection]:
        """Connections that ended after cursor ``since``, in the order they ended."""
        out = []
        for k in range(bisect.bisect_right(self._order, since), len(self._order)):
            id = self._ended_ids[k]
            ended = self._ended.get(id)
            if ended is not None and ended[0] == self._order[k]:
                conn = store.get(id)
                if conn is not None:
                    out.append(conn)
        return out

    async def sleep(self, timeout: float) -> None:
        """Return at the next connection that begins or ends, or after ``timeout`` seconds."""
        event = asyncio.Event()
        self._wakers.add(event)
        try:
            await asyncio.wait_for(event.wait(), max(timeout, 0.0))
        except asyncio.TimeoutError:
            pass
        finally:
            self._wakers.discard(event)

    def _changed(self, change: Change) -> None:
        conn = change.connection
        kind = change.kind
        if kind == "open" and conn is not None:
            if conn.id not in self._began:
                self.tick += 1
                self._began[conn.id] = self.tick
                self._wake()
        elif kind == "close" and conn is not None:
            known = self._ended.get(conn.id)
            if known is None or known[1] != conn.outcome:
                self.tick += 1
                self._ended[conn.id] = (self.tick, conn.outcome)
                self._order.append(self.tick)
                self._ended_ids.append(conn.id)
                if len(self._order) > 2 * len(self._ended) + 1024:
                    self._reorder()
                self._wake()
        elif kind == "evict" and conn is not None:
            self._began.pop(conn.id, None)
            self._ended.pop(conn.id, None)
        elif kind == "clear":
            self._began.clear()
            self._ended.clear()
            self._reorder()
        elif kind == "producer":
            self._wake()

    def _reorder(self) -> None:
        pairs = sorted((t, i) for i, (t, _) in self._ended.items())
        self._order = [t for t, _ in pairs]
        self._ended_ids = [i for _, i in pairs]

    def _wake(self) -> None:
        for event in self._wakers:
            event.set()
