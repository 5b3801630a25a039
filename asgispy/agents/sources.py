"""Where ``asgispy mcp`` gets its connections: a session file, or apps streaming to a collector.

An agent cannot restart the server it was given, so neither source gives up: a session file
that changes (a test run wrote it again, ``asgispy record --jsonl`` grew it) is read again
on the next call, and a collector whose address is taken keeps trying while the tools say
why nothing arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from asgispy.agents.watch import Watch
from asgispy.codec.sessionfile import SessionFileError
from asgispy.store.load import EventLogReader, LogReplaced, is_event_log, load
from asgispy.store.store import Store
from asgispy.wire.address import ENV_ADDRESS, ENV_TOKEN, default_address
from asgispy.wire.collector import AddressTaken, Collector, CollectorError

__all__ = ["FileSource", "FolderSource", "LiveSource"]

logger = logging.getLogger("asgispy.mcp")

#: Seconds between attempts to listen on an address another viewer holds.
LISTEN_RETRY = 2.0


class _SavedSource:
    """What the file and the folder sources share: a store put in place whole when what they
    read is new, the watch numbering only the connections that are new in it."""

    def __init__(self, path: str | os.PathLike[str], watch: Watch, max_connections: int = 50_000) -> None:
        self.path = Path(path)
        self.watch = watch
        self.max_connections = max_connections
        self.problem: str | None = None
        self._store = Store(max_connections=max_connections)
        watch.follow(self._store)

    @property
    def store(self) -> Store:
        return self._store

    def _replace(self, store: Store, fill: Callable[[], object]) -> None:
        """Fill ``store`` and put it in place of the current one; if filling raises, the current
        one stays (and the exception goes on)."""
        self.watch.follow(store)
        try:
            fill()
        except BaseException:
            self.watch.follow(self._store)
            raise
        self.watch.keep_only(store)
        self._store = store


class FileSource(_SavedSource):
    """A saved session, read again whenever the file changes (size or modification time).

    An event log (``--jsonl``, which a dashboard or ``asgispy record`` may still be writing) is
    followed instead: each change applies only the lines added since, so a long recording
    costs an agent's call what was new, not the whole file again.
    """

    def __init__(self, path: str | os.PathLike[str], watch: Watch, max_connections: int = 50_000) -> None:
        super().__init__(path, watch, max_connections)
        self.loaded: float | None = None
        self._stamp: tuple[int, int] | None = None
        self._reader: EventLogReader | None = None

    def refresh(self) -> None:
        try:
            st = os.stat(self.path)
        except OSError as exc:
            reason = exc.strerror or exc
            self.problem = f"cannot read {self.path}: {reason}; it is read as soon as it is there"
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        if self._reader is not None or is_event_log(self.path):
            self._follow(stamp, st.st_mtime)
            return
        try:
            session = load(self.path)
        except (OSError, SessionFileError) as exc:
            # Maybe caught mid-write: keep what was read last, and try again on the next call.
            self.problem = f"{exc}; showing what was read before"
            return
        store = Store(max_connections=max(self.max_connections, len(session)))
        self._replace(store, lambda: store.add_session(session))
        self._stamp = stamp
        self.loaded = st.st_mtime
        self.problem = None
        logger.info("read %s: %d connections", self.path, len(session))

    def _follow(self, stamp: tuple[int, int], written: float) -> None:
        try:
            self._read_log()
        except (OSError, SessionFileError) as exc:
            self.problem = f"{exc}; showing what was read before"
            return
        self._stamp = stamp
        self.loaded = written
        self.problem = None

    def _read_log(self) -> None:
        """Apply what the event log gained; one that is new, replaced or truncated is read from
        the start into a store of its own."""
        if self._reader is not None:
            try:
                self._reader.read()
                return
            except LogReplaced:
                pass
        store = Store(max_connections=self.max_connections)
        reader = EventLogReader(self.path, store)
        self._replace(store, reader.read)
        self._reader = reader

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": "file", "path": str(self.path)}
        if self.loaded is not None:
            import datetime

            out["written"] = datetime.datetime.fromtimestamp(self.loaded).isoformat(timespec="seconds")
        out["reread"] = "whenever the file changes"
        if self.problem:
            out["problem"] = self.problem
        return out

    def hint(self) -> str | None:
        if self.problem:
            return self.problem
        return f"these are the connections saved in {self.path}: new ones appear when it is written again"


class FolderSource(_SavedSource):
    """Every session in a folder (``pytest --asgispy`` leaves one per failing test in
    ``.asgispy/``), as one store, read again whenever a file comes, goes or changes.

    A connection's id is prefixed with its file's name (``test_checkout_fails:3f2a1c-4``): the
    agent sees which test or recording it came from, and two files can never clash.
    """

    PATTERNS = ("*.json", "*.jsonl")

    def __init__(self, path: str | os.PathLike[str], watch: Watch, max_connections: int = 50_000) -> None:
        super().__init__(path, watch, max_connections)
        self.files = 0
        self._stamp: tuple[tuple[str, int, int], ...] | None = None

    def _listing(self) -> tuple[tuple[str, int, int], ...]:
        found = []
        for pattern in self.PATTERNS:
            for file in self.path.glob(pattern):
                with contextlib.suppress(OSError):
                    st = file.stat()
                    found.append((file.name, st.st_mtime_ns, st.st_size))
        return tuple(sorted(found))

    def refresh(self) -> None:
        try:
            listing = self._listing()
        except OSError as exc:
            self.problem = f"cannot read the folder {self.path}: {exc.strerror or exc}"
            return
        if listing == self._stamp:
            return
        store = Store(max_connections=self.max_connections)
        unreadable: list[str] = []

        def fill() -> None:
            for name, _, _ in listing:
                try:
                    session = load(self.path / name)
                except (OSError, SessionFileError) as exc:
                    unreadable.append(f"{name} ({exc})")  # caught mid-write, or not a session
                    continue
                prefix = Path(name).stem
                for conn in session.connections:
                    conn.id = f"{prefix}:{conn.id}"
                store.add_session(session)

        self._replace(store, fill)
        self._stamp, self.files = listing, len(listing) - len(unreadable)
        self.problem = ("not read: " + "; ".join(unreadable)) if unreadable else None
        logger.info("read %d session files in %s: %d connections", self.files, self.path, len(store))

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": "folder", "path": str(self.path), "files": self.files}
        out["reread"] = "whenever a session file in it comes, goes or changes"
        if self.problem:
            out["problem"] = self.problem
        return out

    def hint(self) -> str | None:
        if self.problem:
            return self.problem
        if not self.files:
            return (
                f"no session file in {self.path} yet: `pytest --asgispy` writes one per failing test "
                "there (with --asgispy-dir), `asgispy record -o` and `spy.export()` one each"
            )
        return (
            f"these are the connections of the {self.files} session files in {self.path}; ids say which file"
        )


class LiveSource:
    """A collector that apps using ``Spy(app)`` stream to, listening for as long as the server runs."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self.problem: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def store(self) -> Store:
        return self.collector.store

    def refresh(self) -> None:
        """Nothing to do: the collector feeds the store as frames arrive."""

    async def start(self) -> None:
        """Listen; an address already taken is tried again in the background until it is free."""
        try:
            await self.collector.start()
        except CollectorError as exc:
            self._failed(exc)
            self._task = asyncio.create_task(self._retry())

    def _failed(self, exc: CollectorError) -> None:
        self.problem = _not_listening(exc)
        logger.warning("asgispy mcp: %s", self.problem)

    async def _retry(self) -> None:
        while not self._stopping:
            await asyncio.sleep(LISTEN_RETRY)
            try:
                await self.collector.start()
            except CollectorError as exc:
                self.problem = _not_listening(exc)
                continue
            self.problem = None
            logger.info("asgispy mcp: listening on %s", ", ".join(map(str, self.collector.addresses)))
            return

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.collector.stop()

    def _where(self) -> list[str]:
        return [str(a) for a in (self.collector.addresses or self.collector.requested)]

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": "live", "listening": self._where() if not self.problem else []}
        if self.problem:
            out["problem"] = self.problem
        out["producers_connected"] = self.collector.producers_connected
        return out

    def hint(self) -> str | None:
        if self.problem:
            return self.problem
        if self.collector.producers_connected:
            return None
        address = self._where()[0]
        env = "" if address == str(default_address()) else f"{ENV_ADDRESS}={address} "
        if self.collector.token:
            env += f"{ENV_TOKEN}=<the token this server was given> "
        gone = [s.info for s in self.store.producers.values() if not s.connected]
        if gone:
            last = gone[-1]
            return (
                f"the app that streamed here ({last.app or 'an app'}, pid {last.pid}) has disconnected and "
                f"no other is connected: start it again (with {env.strip() or 'the same environment'})"
            )
        start = f"with {env.strip()}" if env else "as usual (Spy streams to this address by default)"
        return (
            "no app streams here yet: wrap the ASGI app (from asgispy import Spy; app = Spy(app)) and "
            f"start it {start}"
        )


def _not_listening(exc: CollectorError) -> str:
    """Why the live source has no traffic, and, when a viewer holds the address, the way round."""
    text = f"not listening yet: {exc} (trying again every {LISTEN_RETRY:g} s)"
    if isinstance(exc, AddressTaken):
        text += (
            ". An app streams to one address: if an asgispy dashboard or recorder has it, give that "
            "one --jsonl FILE and serve the agent with `asgispy mcp --session FILE` instead"
        )
    return text
