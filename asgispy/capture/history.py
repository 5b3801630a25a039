"""The recent connections a Spy keeps in memory, bounded in count and in bytes.

The request path only appends: a connection as it begins, and again once it has ended. The
rest happens off it, in the background thread (or in whoever reads the history first): each
ended connection is packed into one buffer (see :mod:`asgispy.codec.pack`), counted, and
the oldest are evicted past the bounds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from asgispy.capture.record import ConnectionRecord
from asgispy.codec.redact import Redactor

__all__ = ["History"]

logger = logging.getLogger("asgispy")

#: Ended connections waiting to be packed, at most; past that they are compacted on the spot
#: and never sent (counted), rather than the queue growing while nobody packs.
MAX_PENDING = 1024
#: Connections packed between two moments when the packing thread lets the app's thread run.
YIELD_EVERY = 8


class History:
    """Connections in the order they began; the oldest finished ones go first when full.

    Connections still open (a lifespan, a long WebSocket) are kept while they run, so an
    export made later still shows how the app started up. ``used`` counts the bytes of the
    packed connections kept.
    """

    def __init__(
        self,
        max_connections: int,
        max_bytes: int,
        redactor: Redactor | None = None,
        compact: bool = False,
    ) -> None:
        if max_connections < 0 or max_bytes < 0:
            raise ValueError("history bounds must not be negative")
        self.max_connections = max_connections
        self.max_bytes = max_bytes
        self.redactor = redactor
        #: whether ended connections are compacted on the request path while nobody streams
        self.compact = compact
        # A deque: the steady state (one in, the oldest out) is an append and a popleft.
        self._records: deque[ConnectionRecord] = deque()
        self._pending: deque[ConnectionRecord] = deque()
        self._overflow: deque[ConnectionRecord] = deque()  # ended past MAX_PENDING, not sent yet
        # Past this many the request path trims for itself (the packer is late or gone).
        self._hard_limit = max_connections + max_connections // 4 + 64
        self._lock = threading.Lock()
        #: bytes counted in as connections ended on the request path, without the lock (only
        #: it adds here), and everything else the lock's holders counted: used is the sum
        self._added = 0
        self._counted = 0
        self.evicted = 0
        #: ended connections never packed because the queue was full
        self.unpacked = 0
        #: while a producer streams: told of every connection packed, whoever packs it
        #: (False when it has no room: the record then waits here, to be handed over later)
        self.sink: Callable[[ConnectionRecord], bool] | None = None

    def __len__(self) -> int:
        return len(self.records())

    @property
    def used(self) -> int:
        """Bytes of the kept connections (their packed or estimated sizes)."""
        return self._added + self._counted

    @used.setter
    def used(self, value: int) -> None:
        self._counted = value - self._added

    @property
    def keeps(self) -> bool:
        """Whether this history keeps anything at all."""
        return self.max_connections > 0

    def records(self) -> list[ConnectionRecord]:
        """A snapshot of the kept records, oldest first (packing what has ended first)."""
        self.pack_pending()
        if len(self._records) > self.max_connections:
            self.evict()
        return list(self._records)

    # The request path ------------------------------------------------------------------------

    def add(self, record: ConnectionRecord) -> None:
        """Keep ``record`` (a connection that began). Spy does the same inline."""
        records = self._records
        record.history_slot = True
        records.append(record)
        if len(records) > self._hard_limit:
            self.evict()

    def evict(self) -> None:
        """Past a bound: the oldest out (the steady state, one in and one out), else a trim. One
        at a time: evicting in batches measured dearer (freeing a burst of messages at once
        makes the allocator give back and take again whole pools). Left to the thread if it
        holds the history."""
        lock = self._lock
        if lock.acquire(False):
            try:
                records = self._records
                oldest = records[0]
                if len(records) == self.max_connections + 1 and oldest.outcome != "open":
                    records.popleft()
                    oldest.history_slot = False
                    self._counted -= oldest.size
                    self.evicted += 1
                if len(records) > self.max_connections or self.used > self.max_bytes:
                    self.trim()
            finally:
                lock.release()

    def ended(self, record: ConnectionRecord) -> None:
        """``record`` has ended: pack it soon."""
        if len(self._pending) < MAX_PENDING:
            self._pending.append(record)
        else:
            # The thread is far behind (a viewer that stopped reading, or resting within its CPU
            # share): compact it here; the thread sends it once it has caught up, if the history
            # still holds it by then (else it is counted as never sent).
            overflow = self._overflow
            if len(overflow) >= MAX_PENDING:
                overflow.popleft()
                self.unpacked += 1
            overflow.append(record)
            self.keep_now(record)
            return
        # Past the count, the oldest ended connection goes now (unless the thread is busy with
        # the history, and then it trims in a moment): one still open (the lifespan) is never
        # the one evicted while it runs.
        if len(self._records) > self.max_connections:
            self.evict()

    # Off the request path --------------------------------------------------------------------

    def keep_now(self, record: ConnectionRecord, payload: int | None = None) -> None:
        """``record`` has ended and nobody streams: count it (compacting it first, in a single C
        call, if asked to) and evict past the bounds (request path; if the packing thread holds
        the history, it is left to that thread). ``payload``: the bytes of its payloads, if
        counted as they were recorded (else they are counted here).

        Kept as it was recorded by default: measured under uvicorn, compacting every connection
        costs more than the churn of keeping its objects (see docs/performance.md)."""
        if not record.history_slot:
            return
        if payload is None or self.compact or record.size or record._flat is None:
            self._keep_locked(record, payload)
            return
        # The common case: estimated from what Spy counted, without the lock (only the request
        # path adds to _added), and trimmed past the bounds.
        size = record.size = record.estimate(payload)
        self._added += size
        if len(self._records) > self.max_connections or self._added + self._counted > self.max_bytes:
            self.evict()

    def _keep_locked(self, record: ConnectionRecord, payload: int | None) -> None:
        lock = self._lock
        if not lock.acquire(False):
            if len(self._pending) < MAX_PENDING:
                self._pending.append(record)  # the thread holds the history: it packs it next
            return
        try:
            before = record.size
            self._hold(record, payload)
            self.used += record.size - before
            if len(self._records) > self.max_connections or self.used > self.max_bytes:
                self.trim()
        finally:
            lock.release()

    def _hold(self, record: ConnectionRecord, payload: int | None = None) -> None:
        """Keep an ended ``record`` while nobody streams: compacted into one buffer if asked to,
        else as it was recorded, its bytes estimated once (its ``size`` is what is counted; 0
        until then, so the caller adds it whole)."""
        if self.compact and record.keep():
            return
        if not record.size:
            record.size = record.estimate(payload)

    def pack_pending(self) -> int:
        """Compact every ended connection waiting and evict past the bounds. While a producer
        streams (``sink``), pack them for the wire and hand each to it, until it has no room;
        otherwise count (or compact) them as :meth:`keep_now` does. Returns how many were done."""
        pending = self._pending
        if not pending:
            return 0
        then = self.sink  # a reader of the history must not take them from the sender
        done = 0
        with self._lock:
            keeps = self.max_connections > 0
            while pending:
                record = pending.popleft()
                if then is None and not record.history_slot:
                    continue  # evicted already, and nobody to send it to
                before = record.size
                try:
                    if then is not None:
                        record.pack(self.redactor)
                    else:
                        self._hold(record)
                except Exception as exc:
                    logger.warning("asgispy: could not pack connection %s: %r", record.id, exc)
                    record.note(f"could not pack the connection: {exc!r}")
                    continue
                done += 1
                if keeps and record.history_slot:
                    self.used += record.size - before
                if then is not None and not then(record):
                    pending.appendleft(record)  # packed, and handed over once there is room
                    break
                if not done % YIELD_EVERY:
                    # Hand the GIL to the app's thread now and then: it may be waiting on it
                    # with a request in hand, and would otherwise wait for the switch interval.
                    self._lock.release()
                    time.sleep(0)
                    self._lock.acquire()
            if keeps:
                self.trim()
        return done

    def catch_up(self) -> int:
        """Hand the sink the connections compacted while the thread was behind (those the
        history still holds; the others are counted in ``unpacked``). Returns how many."""
        overflow = self._overflow
        sink = self.sink
        done = 0
        while overflow and sink is not None:
            record = overflow.popleft()
            if not record.history_slot:
                self.unpacked += 1
                continue
            try:
                self.repack(record)
            except Exception as exc:
                logger.warning("asgispy: could not pack connection %s: %r", record.id, exc)
                self.unpacked += 1
                continue
            if not sink(record):
                overflow.appendleft(record)
                break
            done += 1
            if done >= MAX_PENDING:
                break
        return done

    def repack(self, record: ConnectionRecord) -> None:
        """Pack an ended record for the wire (one compacted while nobody streamed)."""
        with self._lock:
            before = record.size
            record.pack(self.redactor)
            if record.history_slot:
                self.used += record.size - before
                self.trim()

    def trim(self) -> None:
        """Evict the oldest finished connections until both bounds hold (under the lock).

        It walks from the front by index, never iterating the deque: the request path may
        append at the back meanwhile.
        """
        records = self._records
        limit, max_bytes = self.max_connections, self.max_bytes
        used = self.used
        removed = 0  # taken off as a difference: the request path may count more in meanwhile
        index = 0
        evicted = 0
        while index < len(records) and (len(records) > limit or used - removed > max_bytes):
            record = records[index]
            # Open records are spared, unless so many are open that sparing them breaks the bound.
            # (A lifespan stays open at the front for the life of the server.)
            if record.outcome != "open" or len(records) > 2 * limit:
                del records[index]  # near the front: cheap in a deque
                if record.history_slot:
                    removed += record.size  # 0 until counted
                record.history_slot = False
                evicted += 1
            else:
                index += 1
                if index > limit:
                    break  # all open at the front: leave the rest for later
        self._counted -= min(removed, used)
        self.evicted += evicted

    def clear(self) -> None:
        with self._lock:
            for record in self._records:
                record.history_slot = False
            self._records.clear()
            self._pending.clear()
            self._overflow.clear()
            self._added = self._counted = 0
