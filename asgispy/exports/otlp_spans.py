"""A recorded connection as the OpenTelemetry span it becomes, in plain values.

:func:`span_plan` maps one :class:`~asgispy.model.connection.Connection` to a :class:`SpanPlan`
following the HTTP semantic conventions (name, kind, times, attributes, one event per ASGI
message, status) without the OpenTelemetry SDK, so the mapping is read and tested without the
``otlp`` extra; :mod:`asgispy.exports.otlp` sends plans, through :mod:`asgispy.exports.otlp_sdk`.
docs/otlp.md has the whole mapping.

Secrets: header values are masked again here with :mod:`asgispy.codec.redact`'s default
list (a session recorded with ``redact=[]`` still sends none), and query parameters with
secret-looking names are replaced with ``REDACTED``, as the semantic conventions ask.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from typing import Literal

from asgispy.codec import jsonform
from asgispy.codec.redact import DEFAULT_REDACT, REDACTED, REDACTED_TEXT, Redactor
from asgispy.exports.line import format_size
from asgispy.model.connection import Connection
from asgispy.model.event import Event
from asgispy.model.session import ProducerInfo
from asgispy.types import PAYLOAD_FIELDS

__all__ = [
    "DEFAULT_BODY_LIMIT",
    "DEFAULT_MAX_EVENTS",
    "Attributes",
    "SpanPlan",
    "service_name_for",
    "span_plan",
]

#: Bytes of a payload sent with ``bodies=True`` (``--otlp-bodies``); the rest is cut.
DEFAULT_BODY_LIMIT = 1024
#: Messages sent as events of one span: the first ones and the last; the count of the others
#: goes in ``asgispy.events.omitted`` (backends struggle with spans of thousands of events).
DEFAULT_MAX_EVENTS = 1000
AttributeValue = str | bool | int | float | list[str]
Attributes = dict[str, AttributeValue]

_METHODS = frozenset({"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"})
_REDACTED_TEXT = REDACTED_TEXT
_HEADER_VALUE_LIMIT = 4096
_DEFAULT_REDACTOR = Redactor(DEFAULT_REDACT)


@dataclass
class SpanPlan:
    """One connection as the span it becomes, in plain values (no SDK needed to build or read it).

    Times are nanoseconds since the epoch. ``error`` is the status description when the span's
    status is ERROR (maybe empty), None when it stays UNSET. ``traceparent``/``tracestate`` are
    the incoming W3C trace context, when the request carried one. ``weight`` is a rough count of
    the bytes the span holds, for memory bounds.
    """

    name: str
    kind: Literal["server", "internal", "client"]
    start: int
    end: int
    attributes: Attributes
    events: list[tuple[str, int, Attributes]] = field(default_factory=list)
    error: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None
    weight: int = 0
    #: spans of what the app did inside it (outgoing calls, SQL): :mod:`~asgispy.exports.otlp_inside`
    children: list[SpanPlan] = field(default_factory=list)


def span_plan(
    conn: Connection,
    *,
    bodies: bool = False,
    body_limit: int = DEFAULT_BODY_LIMIT,
    max_events: int = DEFAULT_MAX_EVENTS,
    redactor: Redactor | None = None,
) -> SpanPlan:
    """The span ``conn`` becomes: name, kind, times, attributes, one event per message, status.

    ``bodies``: each payload (body, bytes or text) goes in its event, cut to ``body_limit``
    bytes. ``redactor`` masks header values (default: asgispy's default secret list).
    """
    redactor = redactor if redactor is not None else _DEFAULT_REDACTOR
    start = _ns(conn.started)
    attributes: Attributes = {
        "asgispy.connection.id": conn.id,
        "asgispy.connection.type": conn.type,
        "asgispy.outcome": conn.outcome,
    }
    traceparent = tracestate = None
    if conn.type in ("http", "websocket"):
        kind: Literal["server", "internal"] = "server"
        name = _web_attributes(conn, attributes, redactor)
        request = conn.request_headers
        traceparent = _first(request, b"traceparent")
        tracestate = _first(request, b"tracestate")
    else:
        kind = "internal"
        name = conn.type
    if conn.handler and conn.handler.get("endpoint"):
        attributes["code.function.name"] = str(conn.handler["endpoint"])
    if conn.close_code is not None:
        attributes["asgispy.websocket.close_code"] = conn.close_code
    if conn.ttfb is not None:
        attributes["asgispy.ttfb"] = conn.ttfb
    if conn.held:
        attributes["asgispy.held"] = conn.held  # seconds held at breakpoints: not the app's time
    if conn.events_dropped:
        attributes["asgispy.events.dropped"] = conn.events_dropped
    if conn.notes:
        attributes["asgispy.notes"] = [str(n) for n in conn.notes]

    chosen = _chosen_events(conn.events, max_events)
    if len(chosen) < len(conn.events):
        attributes["asgispy.events.omitted"] = len(conn.events) - len(chosen)
    # A broken rule goes on the message at fault; one with no such message sent (an unfinished
    # response, or a message past the events sent) goes in an event of its own at the end.
    events_at: dict[int, list[str]] = {}
    loose: list[str] = []
    if conn.violations:
        attributes["asgispy.violations"] = list(dict.fromkeys(v.rule for v in conn.violations))
        sent = set(chosen)
        for v in conn.violations:
            text = f"{v.rule} ({v.severity}): {v.message}"
            if v.event in sent:
                events_at.setdefault(v.event, []).append(text)
            else:
                loose.append(text)
    events: list[tuple[str, int, Attributes]] = []
    error: str | None = None
    last = start
    for index in chosen:
        event = conn.events[index]
        when = start + _ns(event.t)
        last = max(last, when)
        event_name, event_attributes, failure = _event(event, bodies, body_limit)
        if index in events_at:
            event_attributes["asgispy.violations"] = events_at[index]
        if failure is not None and error is None:
            error = failure
        events.append((event_name, when, event_attributes))
    end = start + _ns(conn.duration) if conn.duration is not None else last
    end = max(end, last)
    if loose:
        events.append(("asgispy.violation", end, {"asgispy.violations": loose}))
    for change in conn.interventions:  # what asgispy's rules, addons or a breakpoint did, when
        at = start + _ns(float(change.get("t", 0.0) or 0.0))
        by, what = str(change.get("by", "")), str(change.get("what", ""))
        attributes_of: Attributes = {"asgispy.by": by, "asgispy.what": what}
        events.append(("asgispy.intervention", min(at, end), attributes_of))
    if conn.interventions:
        events.sort(key=lambda item: item[1])

    error = _status(conn, attributes, events, end, error)
    plan = SpanPlan(name, kind, start, end, attributes, events, error, traceparent, tracestate)
    plan.weight = 512 + _weight(attributes) + sum(64 + _weight(a) for _, _, a in events)
    return plan


def _ns(seconds: float) -> int:
    return round(seconds * 1e9)


def _chosen_events(events: list[Event], limit: int) -> list[int]:
    """Indexes of the events to send: all, or the first ``limit - 1`` and the last."""
    count = len(events)
    if count <= limit:
        return list(range(count))
    if limit <= 0:
        return []
    return [*range(limit - 1), count - 1]


def _first(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _web_attributes(conn: Connection, attributes: Attributes, redactor: Redactor) -> str:
    """HTTP semantic-convention attributes of an HTTP or WebSocket connection; returns the span name."""
    scope = conn.scope
    websocket = conn.type == "websocket"
    method = "GET" if websocket else (conn.method or "GET").upper()
    if method in _METHODS:
        attributes["http.request.method"] = method
    else:
        attributes["http.request.method"] = "_OTHER"
        attributes["http.request.method_original"] = conn.method or ""
        method = "HTTP"
    scheme = scope.get("scheme")
    attributes["url.scheme"] = str(scheme) if scheme else ("ws" if websocket else "http")
    attributes["url.path"] = conn.path
    if conn.query_string:
        attributes["url.query"] = redactor.query(conn.query_string.decode("latin-1"))
    route = conn.route
    if route:
        attributes["http.route"] = str(route)
    if conn.status is not None:
        attributes["http.response.status_code"] = conn.status
    request = conn.request_headers
    host = _first(request, b"host")
    address, port = _split_host(host) if host else (None, None)
    server = conn.server
    if address is None and server is not None and server.host:
        address, port = server.host, server.port
    if address:
        attributes["server.address"] = address
        if port is not None:
            attributes["server.port"] = port
    client = conn.client
    if client is not None and client.host:
        attributes["client.address"] = client.host
        if client.port is not None:
            attributes["client.port"] = client.port
    version = scope.get("http_version")
    attributes["network.protocol.name"] = "http"
    if isinstance(version, str) and version:
        attributes["network.protocol.version"] = version
    agent = _first(request, b"user-agent")
    if agent:
        attributes["user_agent.original"] = agent
    if not websocket:
        attributes["http.request.body.size"] = conn.request_bytes
        attributes["http.response.body.size"] = conn.response_bytes
    _header_attributes(attributes, "http.request.header.", request, redactor)
    _header_attributes(attributes, "http.response.header.", conn.response_headers, redactor)
    target = f" {route}" if route else ""
    return f"WEBSOCKET{target}" if websocket else f"{method}{target}"


def _split_host(value: str) -> tuple[str | None, int | None]:
    """``example.com:8000`` -> ("example.com", 8000); ``[::1]:80`` -> ("::1", 80)."""
    value = value.strip()
    if not value:
        return None, None
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
    else:
        host, port_text = value, ""
    port = int(port_text) if port_text.isdigit() else None
    return host or None, port


def _header_attributes(
    attributes: Attributes, prefix: str, headers: list[tuple[bytes, bytes]], redactor: Redactor
) -> None:
    """``http.request.header.<name>``: every value of that header, secrets masked."""
    grouped: dict[str, list[str]] = {}
    for name, value in redactor.headers(headers):
        text = _REDACTED_TEXT if value == REDACTED else value.decode("latin-1")
        grouped.setdefault(prefix + name.decode("latin-1").lower(), []).append(text[:_HEADER_VALUE_LIMIT])
    attributes.update(grouped)


def _event(event: Event, bodies: bool, body_limit: int) -> tuple[str, Attributes, str | None]:
    """An event's name, its attributes and summary, and a failure it reports (``*.failed``)."""
    message = event.peek()
    kind = event.type
    attributes: Attributes = {"asgispy.direction": event.direction}
    if event.wait is not None:
        attributes["asgispy.wait"] = event.wait
    words: list[str] = []
    failure: str | None = None
    if type(message) is dict:
        if event.status is not None and kind.endswith("response.start"):
            attributes["http.response.status_code"] = event.status
            words.append(str(event.status))
        subprotocol = message.get("subprotocol")
        if kind == "websocket.accept" and isinstance(subprotocol, str):
            attributes["asgispy.websocket.subprotocol"] = subprotocol
            words.append(f"subprotocol {subprotocol}")
        for name in PAYLOAD_FIELDS:
            value = message.get(name)
            if value is None:
                continue
            size = event.field_size(name)
            cut = bool(event.cut and name in event.cut)
            attributes["asgispy.payload.kind"] = name
            attributes["asgispy.payload.size"] = size
            words.append(f"{name} {format_size(size)}" + (" (cut when recorded)" if cut else ""))
            if cut:
                attributes["asgispy.payload.cut"] = True
            if bodies and isinstance(value, (bytes, str)):
                text, encoded, shortened = _payload(value, body_limit)
                attributes["asgispy.payload"] = text
                if encoded:
                    attributes["asgispy.payload.encoding"] = "base64"
                if shortened or cut:
                    attributes["asgispy.payload.truncated"] = True
        if "more_body" in message:
            more = bool(message.get("more_body"))
            attributes["asgispy.more_body"] = more
            if more:
                words.append("more_body")
        if kind.startswith("websocket.") and event.code is not None:
            attributes["asgispy.websocket.close_code"] = event.code
            words.append(f"code {event.code}")
            reason = message.get("reason")
            if isinstance(reason, str) and reason:
                attributes["asgispy.websocket.close_reason"] = reason
                words.append(repr(reason))
        if kind.endswith(".failed"):
            said = message.get("message")
            failure = str(said) if said is not None else ""
            if failure:
                attributes["asgispy.failure.message"] = failure
                words.append(failure)
            failure = failure or kind
    if words:
        attributes["asgispy.summary"] = " ".join(words)
    return kind, attributes, failure


def _payload(value: bytes | str, limit: int) -> tuple[str, bool, bool]:
    """(text to send, whether it is base64, whether it was shortened to ``limit`` bytes)."""
    limit = max(limit, 0)
    if isinstance(value, str):
        data = value.encode("utf-8", "replace")
        if len(data) <= limit:
            return data.decode("utf-8"), False, False
        return data[:limit].decode("utf-8", "ignore"), False, True
    kept = value[:limit]
    shortened = len(value) > limit
    # A cut can split a UTF-8 character: up to three bytes less may still be clean text.
    text = jsonform.text_prefix(kept) if shortened else jsonform.bytes_text(kept)
    if text is not None:
        return text, False, shortened
    return base64.b64encode(kept).decode("ascii"), True, shortened


def _status(
    conn: Connection,
    attributes: Attributes,
    events: list[tuple[str, int, Attributes]],
    end: int,
    failure: str | None,
) -> str | None:
    """ERROR for what did not end well (the semantic conventions' rules for server spans: a 5xx,
    an exception; asgispy's own: cancelled, cut off, a lifespan that failed); None otherwise."""
    if conn.outcome == "exception":
        error = conn.error
        kind = error.type if error is not None else "exception"
        attributes["error.type"] = kind
        if error is not None:
            events.append(
                (
                    "exception",
                    end,
                    {
                        "exception.type": error.type,
                        "exception.message": error.message,
                        "exception.stacktrace": error.traceback,
                    },
                )
            )
            return f"{error.type}: {error.message}" if error.message else error.type
        return kind
    if conn.outcome in ("cancelled", "cut off"):
        attributes["error.type"] = conn.outcome.replace(" ", "_")
        return "cancelled before it returned" if conn.outcome == "cancelled" else "its process went away"
    if failure is not None:
        attributes["error.type"] = "failed"
        return failure
    status = conn.status
    if conn.type == "http" and status is not None and status >= 500:
        attributes["error.type"] = str(status)
        return ""
    return None


def _weight(attributes: Attributes) -> int:
    total = 0
    for key, value in attributes.items():
        total += 48 + len(key)
        if isinstance(value, str):
            total += len(value)
        elif isinstance(value, list):
            total += sum(16 + len(v) for v in value)
    return total


def service_name_for(producer: ProducerInfo | None, explicit: str | None) -> str:
    """``service.name``: as asked, else ``$OTEL_SERVICE_NAME``, else the app's name, else "asgispy"."""
    return explicit or os.environ.get("OTEL_SERVICE_NAME") or (producer.app if producer else "") or "asgispy"
