"""What the app did inside a connection, compact, for an agent: one short object per outgoing
call, SQL statement or log record, in time order, and what it did more than once.

An agent asking why a request was slow or wrong needs what and when, not every header: so an
entry is its ``kind``, ``t`` (ms from the connection's start), ``what`` (``GET url``, the
statement, the message) and the one or two numbers that matter (duration, status, rows, level).
Secret query values in URLs are masked as everywhere else here; bodies are left out.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from asgispy.agents.render import clip, ms, query
from asgispy.model.connection import Connection
from asgispy.model.inside import Inside, LogRecord, OutgoingCall, Query

__all__ = ["inside_counts", "inside_fields", "repeated"]

#: the most characters of a URL, statement, message or traceback shown
TEXT_BOUND = 300
TRACEBACK_TAIL = 600


def _url(url: str) -> str:
    base, sep, rest = url.partition("?")
    return f"{base}?{query(rest)}" if sep else url


def _what(item: Inside) -> str:
    if isinstance(item, OutgoingCall):
        return f"{item.method} {_url(item.url)}"
    if isinstance(item, Query):
        return " ".join(item.statement.split())
    if isinstance(item, LogRecord):
        return item.message
    return item.kind


def inside_counts(conn: Connection) -> dict[str, int]:
    """How many of each kind (``{"http": 3, "sql": 12, "log": 1}``), for a connection's summary."""
    return dict(Counter(item.kind for item in conn.inside))


def inside_fields(item: Inside, bound: int = TEXT_BOUND) -> dict[str, Any]:
    """One entry as ``kind``, ``t``, ``what`` and its few numbers."""
    out: dict[str, Any] = {"kind": item.kind, "t": ms(item.t), "what": clip(_what(item), bound)}
    if isinstance(item, OutgoingCall):
        if item.duration is not None:
            out["duration_ms"] = ms(item.duration)
        if item.status is not None:
            out["status"] = item.status
        if item.error:
            out["error"] = clip(item.error, bound)
    elif isinstance(item, Query):
        if item.duration is not None:
            out["duration_ms"] = ms(item.duration)
        if item.rows is not None:
            out["rows"] = item.rows
        if item.many:
            out["many"] = True
        if item.error:
            out["error"] = clip(item.error, bound)
    elif isinstance(item, LogRecord):
        out["level"] = item.level
        if item.logger:
            out["logger"] = item.logger
        if item.where:
            out["where"] = item.where
        if item.exception:
            text = item.exception
            out["exception"] = text if len(text) <= TRACEBACK_TAIL else "…" + text[-TRACEBACK_TAIL:]
    if item.after_response:
        out["after_response"] = True
    return out


def repeated(conn: Connection, bound: int = TEXT_BOUND) -> list[dict[str, Any]]:
    """The calls and statements made more than once (an N+1 shows here), most repeated first."""
    seen = Counter(
        (item.kind, _what(item)) for item in conn.inside if isinstance(item, (OutgoingCall, Query))
    )
    return [
        {"kind": kind, "what": clip(what, bound), "times": times}
        for (kind, what), times in seen.most_common()
        if times > 1
    ]
