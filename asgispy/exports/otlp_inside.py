"""What the app did inside a connection, in OpenTelemetry terms, added to its :class:`SpanPlan`.

Each outgoing HTTP call and each SQL statement is a CLIENT span, child of the connection's
span, following the HTTP client and the database semantic conventions; each log record is a
``log`` event on the connection's span (and an ``exception`` event beside it when a traceback
came with it), since a log record is a point in time, not an operation.

What is sent stays within what asgispy sends for the connection itself: header values are
masked with the same redactor, secret query parameters are ``REDACTED``, and SQL goes as the
statement text only: the recorded parameters (``--inside-sql-params``) never leave, and the
text holds placeholders for them, which is why the conventions let it be sent as it is.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from asgispy.codec.redact import REDACTED, REDACTED_TEXT, Redactor
from asgispy.exports.otlp_spans import Attributes, SpanPlan
from asgispy.model.connection import Connection
from asgispy.model.inside import LogRecord, OutgoingCall, Query

__all__ = ["with_inside"]

_METHODS = frozenset({"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HEADER_VALUE_LIMIT = 4096
_STATEMENT_LIMIT = 8192
#: the logging level as OpenTelemetry's severity number (its log data model)
_SEVERITY = ((50, 21), (40, 17), (30, 13), (20, 9), (10, 5))
_OPERATION = re.compile(r"^\s*(?:/\*.*?\*/\s*)*([A-Za-z]+)", re.DOTALL)
_TARGET = {
    "SELECT": re.compile(r"\bFROM\s+([\w.\"`\[\]]+)", re.IGNORECASE),
    "DELETE": re.compile(r"\bFROM\s+([\w.\"`\[\]]+)", re.IGNORECASE),
    "INSERT": re.compile(r"\bINTO\s+([\w.\"`\[\]]+)", re.IGNORECASE),
    "REPLACE": re.compile(r"\bINTO\s+([\w.\"`\[\]]+)", re.IGNORECASE),
    "UPDATE": re.compile(r"^\s*UPDATE\s+(?:OR\s+\w+\s+)?([\w.\"`\[\]]+)", re.IGNORECASE),
}


def _ns(seconds: float) -> int:
    return round(seconds * 1e9)


def with_inside(plan: SpanPlan, conn: Connection, redactor: Redactor) -> SpanPlan:
    """``plan`` with ``conn``'s outgoing calls and SQL as child spans and its logs as events."""
    inside = conn.inside
    if not inside:
        return plan
    added = 0  # the weight of the events added
    for item in inside:
        start = plan.start + _ns(item.t)
        if isinstance(item, OutgoingCall):
            plan.children.append(_call_span(item, start, redactor))
        elif isinstance(item, Query):
            plan.children.append(_query_span(item, start))
        elif isinstance(item, LogRecord):
            events = _log_events(item, min(start, plan.end))
            plan.events.extend(events)
            added += sum(64 + _weight(a) for _, _, a in events)
    if added:
        plan.events.sort(key=lambda event: event[1])
    plan.weight += added + sum(256 + _weight(c.attributes) for c in plan.children)
    return plan


def _end(start: int, duration: float | None) -> int:
    return start + _ns(max(duration or 0.0, 0.0))


def _error_type(error: str) -> str:
    """``ConnectError: refused`` -> ``ConnectError``: the conventions want the exception's type."""
    head, sep, _ = error.partition(":")
    return head.strip() if sep and head.strip() and " " not in head.strip() else "_OTHER"


def _call_span(call: OutgoingCall, start: int, redactor: Redactor) -> SpanPlan:
    """An HTTP client span: named by the method alone, as the conventions say without a URL template."""
    attributes: Attributes = {}
    method = call.method.upper()
    if method in _METHODS:
        attributes["http.request.method"] = method
        name = method
    else:
        attributes["http.request.method"] = "_OTHER"
        attributes["http.request.method_original"] = call.method
        name = "HTTP"
    parts = urlsplit(call.url)
    query = redactor.query(parts.query) if parts.query else ""
    # No credentials in url.full: user:password in the authority is dropped.
    netloc = parts.netloc.rpartition("@")[2]
    attributes["url.full"] = urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    if parts.scheme:
        attributes["url.scheme"] = parts.scheme
    if parts.hostname:
        attributes["server.address"] = parts.hostname
        try:
            port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
        except ValueError:
            port = None
        if port is not None:
            attributes["server.port"] = port
    if call.library:
        attributes["asgispy.library"] = call.library
    if call.after_response:
        attributes["asgispy.after_response"] = True
    _headers(attributes, "http.request.header.", call.request_headers, redactor)
    _headers(attributes, "http.response.header.", call.response_headers, redactor)
    if call.request_size is not None or call.request_body:
        attributes["http.request.body.size"] = call.request_size or len(call.request_body)
    error: str | None = None
    if call.status is not None:
        attributes["http.response.status_code"] = call.status
        if call.response_size is not None or call.response_body:
            attributes["http.response.body.size"] = call.response_size or len(call.response_body)
        if call.status >= 400:  # a client span's error starts at 4xx
            attributes["error.type"] = str(call.status)
            error = ""
    if call.error:
        attributes["error.type"] = _error_type(call.error)
        error = call.error
    return SpanPlan(name, "client", start, _end(start, call.duration), attributes, error=error)


def _headers(attributes: Attributes, prefix: str, pairs: list[tuple[str, str]], redactor: Redactor) -> None:
    raw = [(k.encode("latin-1", "replace"), v.encode("latin-1", "replace")) for k, v in pairs]
    for name, value in redactor.headers(raw):
        text = REDACTED_TEXT if value == REDACTED else value.decode("latin-1")
        key = prefix + name.decode("latin-1").lower()
        listed = attributes.setdefault(key, [])
        if isinstance(listed, list):
            listed.append(text[:_HEADER_VALUE_LIMIT])


def _query_span(query: Query, start: int) -> SpanPlan:
    """A database client span: ``{operation} {table}`` when the statement says them simply."""
    system = query.database.lower() or "other_sql"
    attributes: Attributes = {"db.system.name": system, "db.query.text": query.statement[:_STATEMENT_LIMIT]}
    name = system
    found = _OPERATION.match(query.statement)
    if found:
        operation = found.group(1).upper()
        attributes["db.operation.name"] = operation
        name = operation
        pattern = _TARGET.get(operation)
        target = pattern.search(query.statement) if pattern else None
        if target:
            table = target.group(1).strip('"`[]')
            attributes["db.collection.name"] = table
            name = f"{operation} {table}"
    if query.rows is not None and query.rows >= 0:
        attributes["db.response.returned_rows"] = query.rows
    if query.many:
        attributes["asgispy.sql.many"] = True
    if query.after_response:
        attributes["asgispy.after_response"] = True
    error = None
    if query.error:
        attributes["error.type"] = _error_type(query.error)
        error = query.error
    return SpanPlan(name, "client", start, _end(start, query.duration), attributes, error=error)


def _severity(levelno: int) -> int:
    return next((number for level, number in _SEVERITY if levelno >= level), 1)


def _log_events(record: LogRecord, when: int) -> list[tuple[str, int, Attributes]]:
    attributes: Attributes = {
        "log.severity": record.level,
        "log.severity_number": _severity(record.levelno),
        "log.message": record.message,
    }
    if record.logger:
        attributes["log.logger"] = record.logger
    path, sep, line = record.where.rpartition(":")
    if sep and line.isdigit():
        attributes["code.file.path"] = path
        attributes["code.line.number"] = int(line)
    elif record.where:
        attributes["code.file.path"] = record.where
    if record.after_response:
        attributes["asgispy.after_response"] = True
    events: list[tuple[str, int, Attributes]] = [("log", when, attributes)]
    if record.exception:
        events.append(("exception", when, _exception(record.exception)))
    return events


def _exception(text: str) -> Attributes:
    """``exception.*`` from a traceback's text: its last line is ``Type: message``."""
    last = next((line for line in reversed(text.strip().splitlines()) if line.strip()), "")
    head, sep, message = last.partition(":")
    kind = head.strip() if sep and head.strip() and " " not in head.strip() else ""
    attributes: Attributes = {"exception.stacktrace": text}
    if kind:
        attributes["exception.type"] = kind
        attributes["exception.message"] = message.strip()
    else:
        attributes["exception.message"] = last.strip()
    return attributes


def _weight(attributes: Attributes) -> int:
    return sum(
        48
        + len(k)
        + (len(v) if isinstance(v, str) else sum(16 + len(s) for s in v) if isinstance(v, list) else 0)
        for k, v in attributes.items()
    )
