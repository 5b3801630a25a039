"""The event log: every change of a store appended to a JSON-lines file as it happens.

``asgispy record --jsonl`` writes one instead of a session at the end, so a long recording holds
nothing in memory; ``asgispy run/attach/demo --jsonl FILE`` write one beside the dashboard, so
that ``asgispy mcp --session FILE`` (a coding agent) or ``asgispy open`` see the same traffic.
``asgispy.load`` reads it back, complete or cut short.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path
from typing import IO, Any

from asgispy.version import __version__

__all__ = ["EventLog"]


class EventLog:
    """Appends every change of a store to a JSON-lines file, as it happens.

    The first line names the format; each further line is one change, in the shape of the
    wire's frames (docs/protocol.md). ``asgispy.load`` reads it back.
    """

    def __init__(self, store: Any, path: str | os.PathLike[str], *, flush_every: float | None = None) -> None:
        import orjson

        from asgispy.store.load import EVENT_LOG_FORMAT, EVENT_LOG_VERSION

        self._dumps = orjson.dumps
        self._option = orjson.OPT_APPEND_NEWLINE
        self.store = store
        self.path = Path(path)
        self.file: IO[bytes] = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        # Writes come from the store's thread; a flusher (flush_every) runs in a thread of its own.
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.connections = 0
        self._producers: dict[str, tuple[bool, int]] = {}
        #: Events written so far of each connection still open (closed ones are dropped).
        self._written: dict[str, int] = {}
        header = {
            "format": EVENT_LOG_FORMAT,
            "version": EVENT_LOG_VERSION,
            "asgispy": __version__,
            "created": time.time(),
        }
        self._write(header)
        self._unsubscribe = store.subscribe(self._on_change)
        if flush_every is not None:
            threading.Thread(
                target=self._flush_until_closed, args=(flush_every,), name="asgispy-eventlog", daemon=True
            ).start()

    def _flush_until_closed(self, interval: float) -> None:
        # Readers (another process following the file) see each line within ``interval``,
        # without a write call per event.
        while not self._closed.wait(interval):
            self.flush()

    def _write(self, obj: dict[str, Any]) -> None:
        data = self._dumps(obj, option=self._option)
        with self._lock:
            if not self.file.closed:
                self.file.write(data)

    def flush(self) -> None:
        with self._lock:
            if not self.file.closed:
                self.file.flush()

    def _on_change(self, change: Any) -> None:
        kind = change.kind
        conn = change.connection
        if kind == "event" and conn is not None:
            self._events(conn)
        elif kind == "open" and conn is not None:
            if conn.id not in self._written:
                self.connections += 1
            self._write({"type": "open", "connection": conn.document()})
            self._written[conn.id] = len(conn.events)
        elif kind == "close" and conn is not None:
            self._events(conn)
            self._written.pop(conn.id, None)
            end = conn.document()
            frame = {"type": "close", "id": conn.id}
            for key in ("outcome", "duration", "error", "handler", "notes", "events_dropped"):
                frame[key] = end[key]
            for key in ("layers", "interventions"):  # kept only when there are some
                if key in end:
                    frame[key] = end[key]
            self._write(frame)
        elif kind == "producer" and change.producer is not None:
            self._producer(change.producer)
        elif kind == "evict" and conn is not None:
            self._written.pop(conn.id, None)
        elif kind == "clear":
            self._written.clear()

    def _events(self, conn: Any) -> None:
        # One change may bring several events (the collector adds a frame's worth at once):
        # write every one not written yet, each at its index.
        start = self._written.get(conn.id, 0)
        events = conn.events
        for index in range(start, len(events)):
            self._write({"type": "event", "id": conn.id, "index": index, "event": events[index].document()})
        self._written[conn.id] = len(events)

    def _producer(self, tag: str) -> None:
        state = self.store.producers.get(tag)
        if state is None:
            return
        known = self._producers.get(tag)
        if known is None:
            self._write({"type": "producer", "tag": tag, **state.info.document()})
        if state.dropped and (known is None or known[1] != state.dropped):
            self._write({"type": "dropped", "producer": tag, "total": state.dropped})
        self._producers[tag] = (state.connected, state.dropped)

    def close(self) -> None:
        """Write the end line and close the file (idempotent)."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._unsubscribe()
        self._write({"type": "end", "created": time.time(), "dropped": self.store.dropped})
        with self._lock:
            self.file.flush()
            with contextlib.suppress(OSError):
                os.fsync(self.file.fileno())
            self.file.close()
