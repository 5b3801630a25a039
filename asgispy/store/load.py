"""Loading saved sessions back into the model."""

from __future__ import annotations

import os
from typing import Any

import orjson

from asgispy.analysis.judge import judge
from asgispy.codec.sessionfile import SessionFileError, read_session
from asgispy.model.session import ProducerInfo, Session
from asgispy.store.store import Store

__all__ = [
    "EVENT_LOG_FORMAT",
    "EventLogReader",
    "LogReplaced",
    "SessionFileError",
    "is_event_log",
    "load",
    "load_event_log",
    "session_from_document",
]

#: The first line of a file ``asgispy record --jsonl`` writes names this format.
EVENT_LOG_FORMAT = "asgispy-events"
EVENT_LOG_VERSION = 1


def load(path: str | os.PathLike[str]) -> Session:
    """Read a session file written by ``Spy.export`` or ``asgispy record`` (``--jsonl`` too).

    Raises SessionFileError, with the reason, for a file that is not a readable session.
    """
    if is_event_log(path):
        return load_event_log(path)
    doc = read_session(path)
    try:
        return session_from_document(doc)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise SessionFileError(f"{path}: malformed session: {exc}") from exc


def session_from_document(doc: Any) -> Session:
    """The session a session document holds, each connection judged (its ``violations``, what
    its layers did), as :func:`load` gives it."""
    session = Session.from_document(doc)
    for conn in session.connections:
        judge(conn)
    return session


def is_event_log(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` starts as an event log (``--jsonl``) rather than a JSON session."""
    try:
        with open(path, "rb") as f:
            head = f.read(256)
    except OSError:
        return False  # read_session reports it
    return head.lstrip().startswith(b"{") and b'"format":"asgispy-events"' in head.replace(b" ", b"")


def load_event_log(path: str | os.PathLike[str]) -> Session:
    """Read the JSON-lines file ``asgispy record --jsonl`` writes: a header, then one change a line.

    The changes are replayed into a store as the recorder saw them. A file cut short (the
    recorder was killed) loads too: its last, unfinished line is skipped, and connections
    it never saw end are marked cut off.
    """
    store = Store(max_connections=1 << 62, max_bytes=1 << 62)
    reader = EventLogReader(path, store)
    reader.read()
    reader.read_tail()
    for tag in list(store.producers):
        store.detach(tag)
    session = store.session()
    session.created = reader.created
    return session


class LogReplaced(Exception):
    """The followed file was replaced or truncated: read it from the start, into a new store."""


class EventLogReader:
    """Applies an event log to ``store``, and on each later :meth:`read` only what was written
    since: for a log another process is still writing (``record --jsonl``, a dashboard's
    ``--jsonl``), which a reader such as ``asgispy mcp --session`` follows without reading it
    all again. Only whole lines are taken; one being written waits for the next read.
    """

    def __init__(self, path: str | os.PathLike[str], store: Any) -> None:
        self.path = path
        self.store = store
        self.offset = 0
        self.lines = 0
        self.created = 0.0
        self.ended = False
        self._identity: tuple[int, int] | None = None
        #: What the last read found after the last newline: a line still being written.
        self._tail = b""

    def read(self) -> int:
        """Apply the whole lines written since the last read; how many. Raises
        SessionFileError for a file that is not an event log or a malformed line, and
        :class:`LogReplaced` when the file is no longer the one being followed."""
        path = self.path
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                identity = (st.st_dev, st.st_ino)
                if self._identity is None:
                    self._identity = identity
                elif identity != self._identity or st.st_size < self.offset:
                    raise LogReplaced(str(path))
                f.seek(self.offset)
                data = f.read()
        except OSError as exc:
            raise SessionFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
        end = data.rfind(b"\n")
        self._tail = data[end + 1 :]
        if end < 0:
            return 0
        self.offset += end + 1
        applied = 0
        for raw in data[:end].split(b"\n"):
            self.lines += 1
            number = self.lines
            if number == 1:
                self._header(raw)
                continue
            if not raw.strip():
                continue
            frame = _line(path, number, raw)
            try:
                _apply(self.store, frame)
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                raise SessionFileError(f"{path}:{number}: malformed change: {exc}") from exc
            if frame.get("type") == "end":
                self.ended = True  # the writer stopped: what it never saw end is cut off
                for tag in list(self.store.producers):
                    self.store.detach(tag)
            applied += 1
        return applied

    def read_tail(self) -> None:
        """Apply the last line :meth:`read` left, one with no newline after it, when it is whole:
        the file is complete, only its final newline is missing. One cut short (the writer was
        killed) is skipped."""
        tail = self._tail
        if not tail.strip():
            return
        if self.lines == 0:
            self._header(tail)  # a log of its header alone: a wrong one is still an error
            self.lines, self.offset = 1, self.offset + len(tail)
            return
        try:
            _apply(self.store, _line(self.path, self.lines + 1, tail))
        except (SessionFileError, ValueError, TypeError, KeyError, AttributeError):
            return  # the line the writer was writing when it stopped
        self.lines += 1
        self.offset += len(tail)

    def _header(self, raw: bytes) -> None:
        header = _line(self.path, 1, raw)
        if header.get("format") != EVENT_LOG_FORMAT:
            raise SessionFileError(f"{self.path} is not an asgispy event log")
        version = header.get("version")
        if not isinstance(version, int) or version > EVENT_LOG_VERSION:
            raise SessionFileError(
                f"{self.path} is event log version {version!r}; this asgispy reads up to {EVENT_LOG_VERSION}"
            )
        self.created = float(header.get("created", 0) or 0)


def _line(path: str | os.PathLike[str], number: int, raw: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SessionFileError(f"{path}:{number}: not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise SessionFileError(f"{path}:{number}: not a JSON object")
    return obj


def _apply(store: Any, frame: dict[str, Any]) -> None:
    kind = frame.get("type")
    if kind == "event":
        store.event(frame["id"], frame["event"], frame.get("index"))
    elif kind == "open":
        store.open(frame["connection"])
    elif kind == "close":
        store.close(frame["id"], frame)
    elif kind == "producer":
        store.attach(ProducerInfo.from_document(str(frame["tag"]), frame))
    elif kind == "dropped":
        store.report_dropped(str(frame["producer"]), int(frame["total"]))
