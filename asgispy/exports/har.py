"""HAR 1.2: recorded HTTP and WebSocket connections for browsers' and proxies' HAR viewers.

HTTP connections become ordinary entries; WebSocket connections become entries with status
101 and their frames in ``_webSocketMessages``, the extension Chrome's DevTools reads and
writes. Lifespan and other scope types have no place in HAR and are left out.

What a recording cannot know is said, never invented: header sizes are -1, DNS and connect
timings -1, a body cut at ``max_body`` carries a comment with its true size, and redacted
values stay ``[redacted]``. Extra facts asgispy knows (connection id, route, outcome, the
exception) go in ``_asgispy`` fields, which HAR readers ignore. The outgoing HTTP calls the app
made are entries of their own, right after their request's (:mod:`~asgispy.exports.har_inside`).

This module assembles the document and its entries; the parts live beside it: headers and
cookies (:mod:`~asgispy.exports.har_headers`), bodies (:mod:`~asgispy.exports.har_content`),
timings (:mod:`~asgispy.exports.har_timings`) and the WebSocket frames
(:mod:`~asgispy.exports.har_websocket`).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import orjson

from asgispy.codec.sessionfile import write_bytes_atomically
from asgispy.exports.har_content import body_size, post_data, response_content
from asgispy.exports.har_headers import (
    header_list,
    http_version,
    request_cookies,
    response_cookies,
    status_text,
)
from asgispy.exports.har_inside import call_id, inside_summary, outgoing_entries
from asgispy.exports.har_timings import http_timings, started, total
from asgispy.exports.har_websocket import websocket_exchange
from asgispy.exports.url import header, request_url
from asgispy.model.connection import Connection
from asgispy.version import __version__

__all__ = ["har_entry", "to_har", "write_har"]

HAR_VERSION = "1.2"


def to_har(
    connections: Iterable[Connection],
    *,
    creator: str = "asgispy",
    comment: str | None = None,
) -> dict[str, Any]:
    """A HAR 1.2 document (``{"log": ...}``) of the HTTP and WebSocket connections, in start order."""

    groups: list[tuple[str, list[dict[str, Any]]]] = []
    for conn in connections:
        entry = har_entry(conn)
        if entry is not None:
            groups.append((entry["startedDateTime"], [entry, *outgoing_entries(conn)]))
    # Sorted by the requests' start; each one's outgoing calls right after it, in their order.
    groups.sort(key=lambda g: g[0])
    entries = [entry for _, group in groups for entry in group]
    log: dict[str, Any] = {
        "version": HAR_VERSION,
        "creator": {"name": creator, "version": __version__},
        "pages": [],
        "entries": entries,
    }
    if comment:
        log["comment"] = comment
    return {"log": log}


def write_har(path: str | os.PathLike[str], connections: Iterable[Connection], **options: Any) -> Path:
    """Write :func:`to_har` of ``connections`` to ``path`` atomically; returns the path."""
    data = orjson.dumps(to_har(connections, **options), option=orjson.OPT_INDENT_2) + b"\n"
    return write_bytes_atomically(path, data)


def har_entry(conn: Connection) -> dict[str, Any] | None:
    """One HAR entry for an HTTP or WebSocket connection; None for any other type."""
    if conn.type == "http":
        return _http_entry(conn)
    if conn.type == "websocket":
        return _websocket_entry(conn)
    return None


def _http_entry(conn: Connection) -> dict[str, Any]:
    request = _request(conn, conn.method or "GET")
    post = post_data(conn)
    if post is not None:
        request["postData"] = post
    headers = conn.response_headers
    status = conn.status or 0
    cookies, redacted = response_cookies(headers)
    response: dict[str, Any] = {
        "status": status,
        "statusText": status_text(status),
        "httpVersion": http_version(conn),
        "cookies": cookies,
        "headers": header_list(headers),
        "content": response_content(conn, headers),
        "redirectURL": (header(headers, b"location") or b"").decode("latin-1"),
        "headersSize": -1,
        "bodySize": body_size(conn, "send", "http.response.body")[0] if status else -1,
    }
    if redacted:
        response["comment"] = "Set-Cookie header redacted when recorded"
    entry = _entry(conn, request, response, http_timings(conn))
    if conn.status is None:
        entry["comment"] = f"no response was sent ({conn.outcome})"
    return entry


def _websocket_entry(conn: Connection) -> dict[str, Any]:
    request = _request(conn, "GET")
    exchange = websocket_exchange(conn)
    entry = _entry(conn, request, exchange.response, exchange.timings)
    entry["_resourceType"] = "websocket"
    entry["_webSocketMessages"] = exchange.messages
    if conn.close_code is not None:
        closed = f"closed with code {conn.close_code}"
        entry["comment"] = f"{entry['comment']}; {closed}" if "comment" in entry else closed
    return entry


def _request(conn: Connection, method: str) -> dict[str, Any]:
    headers = conn.request_headers
    cookies, redacted = request_cookies(headers)
    query = conn.query_string.decode("latin-1")
    request: dict[str, Any] = {
        "method": method,
        "url": request_url(conn),
        "httpVersion": http_version(conn),
        "cookies": cookies,
        "headers": header_list(headers),
        "queryString": [{"name": k, "value": v} for k, v in parse_qsl(query, keep_blank_values=True)],
        "headersSize": -1,
        "bodySize": body_size(conn, "receive", "http.request")[0],
    }
    if redacted:
        request["comment"] = "Cookie header redacted when recorded"
    return request


def _entry(
    conn: Connection, request: dict[str, Any], response: dict[str, Any], timings: dict[str, float]
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "startedDateTime": started(conn),
        "time": total(timings),
        "request": request,
        "response": response,
        "cache": {},
        "timings": timings,
        "_asgispy": _asgispy_fields(conn),
    }
    port = _client_port(conn)
    if port is not None:
        entry["connection"] = str(port)
    address = _server_address(conn)
    if address is not None:
        entry["serverIPAddress"] = address
    if conn.error is not None:
        entry["comment"] = f"the app raised {conn.error.type}: {conn.error.message}"
    return entry


def _asgispy_fields(conn: Connection) -> dict[str, Any]:
    extra: dict[str, Any] = {"id": conn.id, "outcome": conn.outcome}
    if conn.route:
        extra["route"] = conn.route
    if conn.handler and conn.handler.get("endpoint"):
        extra["endpoint"] = conn.handler["endpoint"]
    if conn.error is not None:
        extra["error"] = conn.error.document()
    if conn.close_code is not None:
        extra["closeCode"] = conn.close_code
    if conn.notes:
        extra["notes"] = list(conn.notes)
    if conn.interventions:
        extra["interventions"] = [dict(i) for i in conn.interventions]
    calls = sum(1 for i in conn.inside if i.kind == "http")
    if calls:
        extra["calls"] = [call_id(conn, n) for n in range(1, calls + 1)]
    inside = inside_summary(conn)
    if inside:
        extra["inside"] = inside
    return extra


def _client_port(conn: Connection) -> int | None:
    """The client's port: HAR's ``connection`` is the TCP connection, which keep-alive requests
    share (an ASGI connection id is one request), and readers take it for a port number."""
    client = conn.client
    return client.port if client is not None else None


def _server_address(conn: Connection) -> str | None:
    """The server's IP address; None for a Unix socket path or a name, which are no IP."""
    server = conn.server
    if server is None:
        return None
    try:
        return str(ipaddress.ip_address(server.host))
    except ValueError:
        return None
