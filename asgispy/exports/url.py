"""The URL a recorded request went to, as the client addressed it.

HAR's ``request.url`` and curl's command line both need it, so it lives apart from either:
scheme, the Host header (else the server's address), root_path + path as sent on the wire,
and the query string.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from asgispy.model.connection import Connection

__all__ = ["header", "request_host", "request_url"]

_PATH_SAFE = "/:@!$&'()*+,;=-._~%"
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The first value of the header ``name`` (lower case), or None."""
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


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
    host = header(conn.request_headers, b"host")
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
