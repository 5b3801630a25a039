"""The recent connections a Spy keeps in memory, bounded in count and in bytes."""

from __future__ import annotations

from collections import deque

from asgispy.capture.record import ConnectionRecord

__all__ = ["History"]


class History:
    """Connections in the order they began; the oldest finished ones go first when full.

    Connections still open (a lifespan, a long WebSocket) are kept while they run, so an
    export made later still shows how the app started up. ``used`` is a running estimate
    of the bytes held, grown by the middleware as messages arrive, so that checking the
    bound costs nothing on the request path.
    """

    def __init__(self, max_connections: int, max_bytes: int) -> None:
        if max_connections < 0 or max_bytes < 0:
            raise ValueError("history bounds must not be negative")
        self.max_connections = max_connections
        self.max_bytes = max_bytes
        # A deque: the steady state (one in, the oldest out) is an append and a popleft.
        self._records: deque[ConnectionRecord] = deque()
        self.used = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._records)

    def records(self) -> list[ConnectionRecord]:
        """A snapshot of the kept records, oldest first."""
        return list(self._records)

    def add(self, record: ConnectionRecord) -> bool:
        """Keep ``record``; False when the history keeps nothing."""
        if not self.max_connections:
            return False
        records = self._records
        records.append(record)
        record.history = self
        self.used += record.size
        if len(records) > self.max_connections or self.used > self.max_bytes:
            self.trim()
        return True

    def trim(self) -> None:
        """Evict the oldest finished connections until both bounds hold."""
        records = self._records
        if len(records) <= self.max_connections and self.used <= self.max_bytes:
            return
        if len(records) == self.max_connections + 1:
            # The steady state: one connection too many, and the oldest has finished; or, under a
            # server, the oldest is the lifespan, open for the server's life, and the next has.
            index = 0
            oldest = records[0]
            if oldest.outcome == "open" and len(records) > 1:
                index = 1
                oldest = records[1]
            if oldest.outcome != "open" and self.used - oldest.size <= self.max_bytes:
                if index:
                    del records[1]
                else:
                    records.popleft()
                oldest.history = None
                self.used -= oldest.size
                self.evicted += 1
                return
        doomed: list[int] = []  # indices, oldest first
        count, used = len(records), self.used
        for index, record in enumerate(records):
            if count <= self.max_connections and used <= self.max_bytes:
                break
            # Open records are spared, unless so many are open that sparing them breaks the bound.
            # (A lifespan stays open at the front for the life of the server: this loop then
            # looks at two records, and the deletion below moves one.)
            if record.outcome != "open" or count > 2 * self.max_connections:
                doomed.append(index)
                record.history = None
                count -= 1
                used -= record.size
        if len(doomed) <= 16:
            for index in reversed(doomed):
                del records[index]  # near the front: cheap in a deque
        else:
            gone = set(doomed)
            self._records = deque(record for index, record in enumerate(records) if index not in gone)
        self.used = max(used, 0)
        self.evicted += len(doomed)

    def clear(self) -> None:
        for record in self._records:
            record.history = None
        self._records.clear()
        self.used = 0
