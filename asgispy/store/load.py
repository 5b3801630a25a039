"""Loading saved sessions back into the model."""

from __future__ import annotations

import os
from typing import Any

import orjson

from asgispy.capture.sessionfile import SessionFileError, read_session
from asgispy.store.model import ProducerInfo, Session

__all__ = ["EVENT_LOG_FORMAT", "SessionFileError", "load", "load_event_log"]

#: The first line of a file ``asgispy record --jsonl`` writes names this format.
EVENT_LOG_FORMAT = "asgispy-events"
EVENT_LOG_VERSION = 1


def load(path: str | os.PathLike[str]) -> Session:
    """Read a session file written by ``Spy.export`` or ``asgispy record`` (``--jsonl`` too).

    Raises SessionFileError, with the reason, for a file that is not a readable session.
    """
    if _is_event_log(path):
        return load_event_log(path)
    doc = read_session(path)
    try:
        return Session.from_document(doc)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise SessionFileError(f"{path}: malformed session: {exc}") from exc


def _is_event_log(path: str | os.PathLike[str]) -> bool:
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
    from asgispy.store.store import Store

    try:
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")
    except OSError as exc:
        raise SessionFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    header = _line(path, 1, lines[0])
    if header.get("format") != EVENT_LOG_FORMAT:
        raise SessionFileError(f"{path} is not an asgispy event log")
    version = header.get("version")
    if not isinstance(version, int) or version > EVENT_LOG_VERSION:
        raise SessionFileError(
            f"{path} is event log version {version!r}; this asgispy reads up to {EVENT_LOG_VERSION}"
        )
    store = Store(max_connections=1 << 62, max_bytes=1 << 62)
    last = len(lines) - 1
    for number, raw in enumerate(lines[1:], start=2):
        if not raw.strip():
            continue
        try:
            frame = _line(path, number, raw)
            _apply(store, frame)
        except SessionFileError:
            if number - 1 == last:
                break  # the line the recorder was writing when it stopped
            raise
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise SessionFileError(f"{path}:{number}: malformed change: {exc}") from exc
    for tag in list(store.producers):
        store.detach(tag)
    session = store.session()
    session.created = float(header.get("created", 0) or 0)
    return session


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
