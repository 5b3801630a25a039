"""Send a recorded request again, edited or not: over HTTP to the live app that served it, or
in-process to an app. The new request carries ``x-asgispy-resent-from: <id>``, so its
connection shows whose copy it is (``Connection.resent_from``).

Header values that were redacted when recorded cannot be sent as they were: they come from
``$ASGISPY_SECRET_<NAME>`` (as for ``asgispy replay``), or are left out and reported.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from asgispy.codec.redact import REDACTED_TEXT
from asgispy.model.connection import RESENT_HEADER, Connection

__all__ = ["RESENT_HEADER", "Resent", "base_url", "request_doc", "resend"]

TIMEOUT = 30.0
_HOP = {"host", "content-length", "transfer-encoding", "connection", RESENT_HEADER}


@dataclass
class Resent:
    """What came back: the status (None when nothing did), and what was left out or went wrong."""

    status: int | None
    missing_secrets: list[str] = field(default_factory=list)
    error: str | None = None
    body: bytes = b""


def request_doc(conn: Connection) -> dict[str, Any]:
    """The recorded request as the editor shows it (method, path, query, headers, body)."""
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in conn.request_headers]
    doc: dict[str, Any] = {
        "method": conn.method or "GET",
        "path": conn.path or "/",
        "query": conn.query_string.decode("latin-1"),
        "headers": [(k, v) for k, v in headers if k.lower() not in _HOP],
    }
    body = conn.request_body()
    try:
        doc["body"] = body.decode("utf-8")
    except UnicodeDecodeError:
        doc["body_base64"] = base64.b64encode(body).decode("ascii")
    return doc


def base_url(conn: Connection) -> str | None:
    """Where the app that served ``conn`` listens (None: a Unix socket, or not known)."""
    server = conn.server
    if server is None or server.port is None:
        return None
    host = server.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    scheme = str(conn.scope.get("scheme", "http"))
    return f"{'https' if scheme in ('https', 'wss') else 'http'}://{host}:{server.port}"


def _secrets(
    headers: list[tuple[str, str]], env: Mapping[str, str]
) -> tuple[list[tuple[str, str]], list[str]]:
    out, missing = [], []
    for name, value in headers:
        if value == REDACTED_TEXT:
            supplied = env.get("ASGISPY_SECRET_" + name.upper().replace("-", "_"))
            if supplied is None:
                missing.append(name)
                continue
            value = supplied
        out.append((name, value))
    return out, missing


def _body(doc: dict[str, Any]) -> bytes:
    if "body_base64" in doc:
        return base64.b64decode(str(doc["body_base64"]))
    return str(doc.get("body", "") or "").encode("utf-8")


async def resend(
    doc: dict[str, Any],
    resent_from: str,
    *,
    url: str | None = None,
    app: Any = None,
    env: Mapping[str, str] | None = None,
    timeout: float = TIMEOUT,
) -> Resent:
    """Send the request ``doc`` to ``url`` (the live app) or to ``app`` (in-process)."""
    import httpx

    headers, missing = _secrets(list(doc.get("headers", ())), os.environ if env is None else env)
    headers.append((RESENT_HEADER, resent_from))
    target = str(doc.get("path", "/")) + (f"?{doc['query']}" if doc.get("query") else "")
    if app is not None:
        transport: httpx.AsyncBaseTransport = httpx.ASGITransport(app=app)
        base = "http://asgispy.local"
    elif url is not None:
        transport, base = httpx.AsyncHTTPTransport(), url
    else:
        return Resent(None, missing, "nowhere to send it: the app's address is not known")
    try:
        async with httpx.AsyncClient(transport=transport, base_url=base, timeout=timeout) as client:
            answer = await client.request(
                str(doc.get("method", "GET")), target, headers=headers, content=_body(doc)
            )
    except httpx.HTTPError as exc:
        return Resent(None, missing, f"{type(exc).__name__}: {exc}")
    return Resent(answer.status_code, missing, None, answer.content)
