"""What the app did inside a connection, in HAR: its outgoing calls as entries of their own.

An outgoing HTTP call is an exchange like any other, so it becomes a HAR entry a viewer shows
beside the request that made it, marked ``_asgispy.kind = "outgoing"`` with its parent's id; the
parent lists its calls' ids in ``_asgispy.calls``. Log records and SQL statements have no place
in HAR, so they go in the parent's ``_asgispy.inside``, a compact list in time order.

Only the duration of a call is known, not its phases: it is all ``wait``. Headers come as the
capture kept them (secrets already ``[redacted]``); a failed call has status 0 and says why in
``_asgispy.error`` and the entry's comment.
"""

from __future__ import annotations

import datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from asgispy.exports.har_content import text_or_base64
from asgispy.exports.har_headers import status_text
from asgispy.exports.har_timings import timings, total
from asgispy.model.connection import Connection
from asgispy.model.inside import LogRecord, OutgoingCall, Query

__all__ = ["call_id", "inside_summary", "outgoing_entries"]


def call_id(conn: Connection, number: int) -> str:
    """The ``_asgispy.id`` of the connection's ``number``-th outgoing call (1-based)."""
    return f"{conn.id}.call{number}"


def outgoing_entries(conn: Connection) -> list[dict[str, Any]]:
    """One HAR entry per outgoing HTTP call of ``conn``, in the order they were made."""
    calls = [i for i in conn.inside if isinstance(i, OutgoingCall)]
    return [_entry(conn, call, call_id(conn, n)) for n, call in enumerate(calls, 1)]


def inside_summary(conn: Connection) -> list[dict[str, Any]]:
    """The connection's log records and SQL statements, compact, for its ``_asgispy.inside``."""
    summary: list[dict[str, Any]] = []
    for item in conn.inside:
        entry: dict[str, Any] = {"kind": item.kind, "t": round(item.t, 6)}
        if isinstance(item, LogRecord):
            entry.update(level=item.level, logger=item.logger, message=item.message)
            if item.where:
                entry["where"] = item.where
            if item.exception:
                entry["exception"] = item.exception
        elif isinstance(item, Query):
            entry.update(statement=item.statement, duration=item.duration, rows=item.rows)
            if item.database:
                entry["database"] = item.database
            if item.many:
                entry["many"] = True
            if item.error:
                entry["error"] = item.error
        else:
            continue
        if item.after_response:
            entry["after_response"] = True
        summary.append(entry)
    return summary


def _started(conn: Connection, t: float) -> str:
    when = datetime.datetime.fromtimestamp(conn.started + t, tz=datetime.timezone.utc)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _headers(pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in pairs]


def _header(pairs: list[tuple[str, str]], name: str) -> str | None:
    return next((v for k, v in pairs if k.lower() == name), None)


def _cut_comment(kept: int, size: int | None) -> str | None:
    if size is not None and size > kept:
        return f"body cut when recorded: {kept} of {size} bytes kept"
    return None


def _request(call: OutgoingCall) -> dict[str, Any]:
    query = urlsplit(call.url).query
    request: dict[str, Any] = {
        "method": call.method,
        "url": call.url,
        "httpVersion": "HTTP/1.1",
        "cookies": [],
        "headers": _headers(call.request_headers),
        "queryString": [{"name": k, "value": v} for k, v in parse_qsl(query, keep_blank_values=True)],
        "headersSize": -1,
        "bodySize": call.request_size if call.request_size is not None else len(call.request_body),
    }
    if call.request_body or call.request_size:
        text, encoding = text_or_base64(call.request_body)
        mime = _header(call.request_headers, "content-type") or "application/octet-stream"
        post: dict[str, Any] = {"mimeType": mime, "params": [], "text": text}
        if encoding:
            post["encoding"] = encoding
        comment = _cut_comment(len(call.request_body), call.request_size)
        if comment:
            post["comment"] = comment
        request["postData"] = post
    return request


def _response(call: OutgoingCall) -> dict[str, Any]:
    status = call.status or 0
    size = call.response_size if call.response_size is not None else len(call.response_body)
    content: dict[str, Any] = {
        "size": size,
        "mimeType": _header(call.response_headers, "content-type") or "x-unknown",
    }
    text, encoding = text_or_base64(call.response_body)
    content["text"] = text
    if encoding:
        content["encoding"] = encoding
    comment = _cut_comment(len(call.response_body), call.response_size)
    if comment:
        content["comment"] = comment
    return {
        "status": status,
        "statusText": status_text(status),
        "httpVersion": "HTTP/1.1",
        "cookies": [],
        "headers": _headers(call.response_headers),
        "content": content,
        "redirectURL": _header(call.response_headers, "location") or "",
        "headersSize": -1,
        "bodySize": size if status else -1,
    }


def _entry(conn: Connection, call: OutgoingCall, ident: str) -> dict[str, Any]:
    phases = timings(0.0, call.duration or 0.0, 0.0)
    extra: dict[str, Any] = {"id": ident, "kind": "outgoing", "parent": conn.id, "t": round(call.t, 6)}
    if call.library:
        extra["library"] = call.library
    if call.after_response:
        extra["after_response"] = True
    entry: dict[str, Any] = {
        "startedDateTime": _started(conn, call.t),
        "time": total(phases),
        "request": _request(call),
        "response": _response(call),
        "cache": {},
        "timings": phases,
        "_asgispy": extra,
    }
    if call.error:
        extra["error"] = call.error
        entry["comment"] = f"the call failed: {call.error}"
    elif call.status is None:
        entry["comment"] = "no response was recorded"
    return entry
