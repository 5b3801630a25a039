"""HAR 1.2: recorded HTTP and WebSocket connections for browsers' and proxies' HAR viewers.

HTTP connections become ordinary entries; WebSocket connections become entries with status
101 and their frames in ``_webSocketMessages``, the extension Chrome's DevTools reads and
writes. Lifespan and other scope types have no place in HAR and are left out.

What a recording cannot know is said, never invented: header sizes are -1, DNS and connect
timings -1, a body cut at ``max_body`` carries a comment with its true size, and redacted
values stay ``[redacted]``. Extra facts asgispy knows (connection id, route, outcome, the
exception) go in ``_asgispy`` fields, which HAR readers ignore.
"""

from __future__ import annotations

import base64
import datetime
import gzip
import http
import ipaddress
import os
import zlib
from collections.abc import Iterable
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import orjson

from asgispy.codec import jsonform
from asgispy.codec.redact import REDACTED
from asgispy.codec.sessionfile import write_bytes_atomically
from asgispy.model.connection import Connection
from asgispy.model.event import Event
from asgispy.version import __version__

__all__ = ["har_entry", "request_url", "to_har", "write_har"]

HAR_VERSION = "1.2"
_REDACTED_TEXT = REDACTED.decode()
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"


def to_har(
    connections: Iterable[Connection],
    *,
    creator: str = "asgispy",
    comment: str | None = None,
) -> dict[str, Any]:
    """A HAR 1.2 document (``{"log": ...}``) of the HTTP and WebSocket connections, in start order."""

    entries = [entry for entry in (har_entry(c) for c in connections) if entry is not None]
    entries.sort(key=lambda e: e["startedDateTime"])
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


# URL and headers -----------------------------------------------------------------------------


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def request_url(conn: Connection, base_url: str | None = None) -> str:
    """The URL the client asked for: scheme, Host header (or server), root_path + path, query.

    ``base_url`` (``http://host:port``, maybe with a path prefix) replaces scheme and host.
    """
    scope = conn.scope
    path = _raw_path(scope)
    query = conn.query_string
    target = path + ("?" + query.decode("latin-1") if query else "")
    if base_url is not None:
        return base_url.rstrip("/") + target
    scheme = str(scope.get("scheme") or ("ws" if conn.type == "websocket" else "http"))
    return f"{scheme}://{request_host(conn)}{target}"


def request_host(conn: Connection) -> str:
    """``host[:port]`` as the client addressed it: the Host header, else the server address."""
    host = _header(conn.request_headers, b"host")
    if host:
        return host.decode("latin-1")
    server = conn.server
    scheme = str(conn.scope.get("scheme") or "http")
    if server is not None and server.host:
        name = server.host
        if ":" in name and not name.startswith("["):
            name = f"[{name}]"  # IPv6
        if server.port is not None and server.port != _DEFAULT_PORTS.get(scheme):
            return f"{name}:{server.port}"
        return name
    return "localhost"


def _raw_path(scope: dict[str, Any]) -> str:
    """The path as sent on the wire: raw_path when the server gave it, else path quoted."""
    root = scope.get("root_path")
    quoted_root = quote(root, safe=_PATH_SAFE) if isinstance(root, str) else ""
    raw = scope.get("raw_path")
    if isinstance(raw, bytes) and raw:
        path = raw.decode("latin-1")
    else:
        path = quote(str(scope.get("path") or "/"), safe=_PATH_SAFE)
    # Servers put root_path in front of path themselves (ASGI); older ones did not.
    if quoted_root and not path.startswith(quoted_root):
        path = quoted_root.rstrip("/") + path
    return path or "/"


def _har_headers(headers: list[tuple[bytes, bytes]]) -> list[dict[str, str]]:
    return [{"name": k.decode("latin-1"), "value": v.decode("latin-1")} for k, v in headers]


def _http_version(conn: Connection) -> str:
    version = conn.scope.get("http_version")
    return f"HTTP/{version}" if isinstance(version, str) and version else "HTTP/1.1"


def _request_cookies(headers: list[tuple[bytes, bytes]]) -> tuple[list[dict[str, Any]], bool]:
    """Cookies from Cookie headers; True as second item when a header was redacted."""
    cookies: list[dict[str, Any]] = []
    redacted = False
    for key, value in headers:
        if key.lower() != b"cookie":
            continue
        if value == REDACTED:
            redacted = True
            continue
        for pair in value.decode("latin-1").split(";"):
            name, sep, val = pair.strip().partition("=")
            if name and sep:
                cookies.append({"name": name, "value": val})
    return cookies, redacted


def _response_cookies(headers: list[tuple[bytes, bytes]]) -> tuple[list[dict[str, Any]], bool]:
    cookies: list[dict[str, Any]] = []
    redacted = False
    for key, value in headers:
        if key.lower() != b"set-cookie":
            continue
        if value == REDACTED:
            redacted = True
            continue
        parsed = SimpleCookie()
        try:
            parsed.load(value.decode("latin-1"))
        except CookieError:
            continue
        for morsel in parsed.values():
            cookie: dict[str, Any] = {"name": morsel.key, "value": morsel.value}
            for attr, har_name in (("path", "path"), ("domain", "domain"), ("expires", "expires")):
                if morsel[attr]:
                    cookie[har_name] = _cookie_expiry(morsel[attr]) if attr == "expires" else morsel[attr]
            if morsel["httponly"]:
                cookie["httpOnly"] = True
            if morsel["secure"]:
                cookie["secure"] = True
            cookies.append(cookie)
    return cookies, redacted


def _cookie_expiry(text: str) -> str:
    try:
        from email.utils import parsedate_to_datetime

        return parsedate_to_datetime(text).isoformat()
    except (TypeError, ValueError):
        return text


# Bodies ----------------------------------------------------------------------------------------


def _mime_type(headers: list[tuple[bytes, bytes]], default: str = "x-unknown") -> str:
    value = _header(headers, b"content-type")
    return value.decode("latin-1") if value else default


def _body_size(conn: Connection, direction: str, kind: str) -> tuple[int, int | None]:
    """(true size, kept size when something was cut else None) of the body events of one kind."""
    full = 0
    kept = 0
    cut = False
    for event in conn.events:
        if event.direction == direction and event.type == kind:
            size = event.field_size("body")
            full += size
            if event.cut and "body" in event.cut:
                cut = True
                kept += len(event.message.get("body") or b"")
            else:
                kept += size
    return full, (kept if cut else None)


def _text_or_base64(data: bytes) -> tuple[str, str | None]:
    text = jsonform.bytes_text(data)
    if text is not None:
        return text, None
    return base64.b64encode(data).decode("ascii"), "base64"


def _decompressed(data: bytes, encoding: bytes | None) -> bytes | None:
    """The body a browser would show for a gzip/deflate response; None when it cannot tell."""
    if not encoding:
        return data
    name = encoding.strip().lower()
    try:
        if name in (b"gzip", b"x-gzip"):
            return gzip.decompress(data)
        if name == b"deflate":
            try:
                return zlib.decompress(data)
            except zlib.error:
                return zlib.decompress(data, -zlib.MAX_WBITS)
    except (OSError, EOFError, zlib.error):
        return None
    return None


def _post_data(conn: Connection) -> dict[str, Any] | None:
    full, kept = _body_size(conn, "receive", "http.request")
    body = conn.request_body()
    if full == 0 and not body:
        return None
    mime = _mime_type(conn.request_headers, "application/octet-stream")
    text, encoding = _text_or_base64(body)
    post: dict[str, Any] = {"mimeType": mime, "params": [], "text": text}
    if encoding:
        post["encoding"] = encoding  # not in HAR 1.2's postData, but what readers understand
    if mime.split(";")[0].strip().lower() == "application/x-www-form-urlencoded" and encoding is None:
        post["params"] = [{"name": k, "value": v} for k, v in parse_qsl(text, keep_blank_values=True)]
    if kept is not None:
        post["comment"] = f"body cut when recorded: {kept} of {full} bytes kept"
    return post


def _content(conn: Connection, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    full, kept = _body_size(conn, "send", "http.response.body")
    body = conn.response_body()
    content: dict[str, Any] = {"size": full, "mimeType": _mime_type(headers)}
    if not body:
        if kept is not None:
            content["comment"] = f"body cut when recorded: 0 of {full} bytes kept"
        else:
            content["text"] = ""  # known to be empty: readers expect the field (haralyzer does)
        return content
    encoding = _header(headers, b"content-encoding")
    plain = _decompressed(body, encoding) if kept is None else None
    if plain is not None and plain is not body:
        content["size"] = len(plain)
        content["compression"] = len(plain) - full
        body = plain
    text, b64 = _text_or_base64(body)
    content["text"] = text
    if b64:
        content["encoding"] = b64
    if kept is not None:
        content["comment"] = f"body cut when recorded: {kept} of {full} bytes kept"
    elif encoding and plain is None:
        content["comment"] = f"body as sent, still {encoding.decode('latin-1')}-encoded"
    return content


# Timing ----------------------------------------------------------------------------------------


def _ms(seconds: float) -> float:
    return round(max(seconds, 0.0) * 1000, 3)


def _started(conn: Connection) -> str:
    when = datetime.datetime.fromtimestamp(conn.started, tz=datetime.timezone.utc)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _http_timings(conn: Connection) -> dict[str, float]:
    """send: until the app had read the request; wait: until it answered; receive: the body."""
    request_end = 0.0
    response_start: float | None = None
    response_end: float | None = None
    for event in conn.events:
        if event.direction == "receive" and event.type == "http.request":
            request_end = event.t
        elif event.type == "http.response.start" and response_start is None:
            response_start = event.t
        elif event.type == "http.response.body":
            response_end = event.t
    end = conn.duration if conn.duration is not None else (response_end or request_end)
    if response_start is None:
        return _timings(request_end, max(end - request_end, 0.0), 0.0)
    # An app may answer before it reads the whole body (an echo streaming it back): the parts
    # must not overlap, or their sum (the entry's time) would exceed the connection's duration.
    sent = min(request_end, response_start)
    return _timings(
        sent,
        response_start - sent,
        (response_end if response_end is not None else response_start) - response_start,
    )


def _timings(send: float, wait: float, receive: float) -> dict[str, float]:
    return {
        "blocked": -1,
        "dns": -1,
        "connect": -1,
        "ssl": -1,
        "send": _ms(send),
        "wait": _ms(wait),
        "receive": _ms(receive),
    }


def _total(timings: dict[str, float]) -> float:
    return round(sum(v for v in timings.values() if v > 0), 3)


# Entries ---------------------------------------------------------------------------------------


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
    return extra


def _request(conn: Connection, method: str) -> dict[str, Any]:
    headers = conn.request_headers
    cookies, redacted = _request_cookies(headers)
    query = conn.query_string.decode("latin-1")
    request: dict[str, Any] = {
        "method": method,
        "url": request_url(conn),
        "httpVersion": _http_version(conn),
        "cookies": cookies,
        "headers": _har_headers(headers),
        "queryString": [{"name": k, "value": v} for k, v in parse_qsl(query, keep_blank_values=True)],
        "headersSize": -1,
        "bodySize": _body_size(conn, "receive", "http.request")[0],
    }
    if redacted:
        request["comment"] = "Cookie header redacted when recorded"
    return request


def _http_entry(conn: Connection) -> dict[str, Any]:
    request = _request(conn, conn.method or "GET")
    post = _post_data(conn)
    if post is not None:
        request["postData"] = post
    headers = conn.response_headers
    status = conn.status or 0
    cookies, redacted = _response_cookies(headers)
    response: dict[str, Any] = {
        "status": status,
        "statusText": _reason(status),
        "httpVersion": _http_version(conn),
        "cookies": cookies,
        "headers": _har_headers(headers),
        "content": _content(conn, headers),
        "redirectURL": (_header(headers, b"location") or b"").decode("latin-1"),
        "headersSize": -1,
        "bodySize": _body_size(conn, "send", "http.response.body")[0] if status else -1,
    }
    if redacted:
        response["comment"] = "Set-Cookie header redacted when recorded"
    timings = _http_timings(conn)
    entry = _entry(conn, request, response, timings)
    if conn.status is None:
        entry["comment"] = f"no response was sent ({conn.outcome})"
    return entry


def _entry(
    conn: Connection, request: dict[str, Any], response: dict[str, Any], timings: dict[str, float]
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "startedDateTime": _started(conn),
        "time": _total(timings),
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


def _reason(status: int) -> str:
    if status == 0:
        return ""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def _frame(conn: Connection, event: Event) -> dict[str, Any] | None:
    message = event.message
    text = message.get("text")
    data = message.get("bytes")
    # Chrome's point of view: "send" is what the client sent, that is what the app received.
    kind = "send" if event.direction == "receive" else "receive"
    frame: dict[str, Any] = {"type": kind, "time": round(conn.started + event.t, 6)}
    if isinstance(text, str):
        frame.update(opcode=1, data=text)
    elif isinstance(data, bytes):
        frame.update(opcode=2, data=base64.b64encode(data).decode("ascii"))
    else:
        return None
    if event.cut:
        frame["_cut"] = max(event.cut.values())
    return frame


def _websocket_entry(conn: Connection) -> dict[str, Any]:
    request = _request(conn, "GET")
    accepted: float | None = None
    status = conn.status or 0
    messages: list[dict[str, Any]] = []
    last = 0.0
    for event in conn.events:
        last = event.t
        if event.type == "websocket.accept" and accepted is None:
            accepted = event.t
        elif event.type in ("websocket.receive", "websocket.send"):
            frame = _frame(conn, event)
            if frame is not None:
                messages.append(frame)
    headers = conn.response_headers if status == 101 else []
    response: dict[str, Any] = {
        "status": status,
        "statusText": _reason(status),
        "httpVersion": _http_version(conn),
        "cookies": _response_cookies(headers)[0],
        "headers": _har_headers(headers),
        "content": {"size": 0, "mimeType": "x-unknown", "text": ""},
        "redirectURL": "",
        "headersSize": -1,
        "bodySize": 0,
    }
    if status not in (0, 101):
        # Refused before accept: a plain 403, or the app's own denial response.
        headers = conn.response_headers
        body = b"".join(
            e.message.get("body") or b"" for e in conn.events if e.type == "websocket.http.response.body"
        )
        response["headers"] = _har_headers(headers)
        text, b64 = _text_or_base64(body)
        response["content"] = {"size": len(body), "mimeType": _mime_type(headers), "text": text}
        if b64:
            response["content"]["encoding"] = b64
    end = conn.duration if conn.duration is not None else last
    opened = accepted if accepted is not None else end
    entry = _entry(conn, request, response, _timings(0.0, opened, end - opened))
    entry["_resourceType"] = "websocket"
    entry["_webSocketMessages"] = messages
    if conn.close_code is not None:
        closed = f"closed with code {conn.close_code}"
        entry["comment"] = f"{entry['comment']}; {closed}" if "comment" in entry else closed
    return entry
