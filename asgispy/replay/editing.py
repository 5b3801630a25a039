"""A request or a response as text a person edits, and back: the form of the dashboard's editor
(a held connection, a request to send again) and of the agents' tools.

```
POST /orders?dry=1
content-type: application/json

{"item": 3}
```

The first line is the method and the target (a response's: its status); then one header per
line, ``name: value``, repeated names in order; a blank line; the body as text, exactly (a body
that is not UTF-8 is shown as base64 under ``asgispy-body: base64`` and read back the same way).
"""

from __future__ import annotations

import base64
from typing import Any

__all__ = ["EditError", "parse_request", "parse_response", "request_text", "response_text"]

_BASE64 = "asgispy-body"


class EditError(ValueError):
    """Text that is not a request or response, with the line at fault."""


def _body_lines(doc: dict[str, Any]) -> tuple[list[str], str]:
    if "body_base64" in doc:
        return [f"{_BASE64}: base64"], str(doc["body_base64"])
    return [], str(doc.get("body", "") or "")


def _headers(doc: dict[str, Any]) -> list[str]:
    return [f"{name}: {value}" for name, value in doc.get("headers", ())]


def request_text(doc: dict[str, Any]) -> str:
    """``{"method", "path", "query", "headers", "body"}`` as editable text."""
    query = doc.get("query") or ""
    target = f"{doc.get('path', '/')}?{query}" if query else str(doc.get("path", "/"))
    extra, body = _body_lines(doc)
    return "\n".join([f"{doc.get('method', 'GET')} {target}", *_headers(doc), *extra, "", body])


def response_text(doc: dict[str, Any]) -> str:
    """``{"status", "headers", "body"}`` as editable text."""
    extra, body = _body_lines(doc)
    return "\n".join([str(doc.get("status", 200)), *_headers(doc), *extra, "", body])


def _split(text: str) -> tuple[str, list[tuple[str, str]], str | bytes]:
    head, sep, body = text.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    first = lines[0].strip()
    if not first:
        raise EditError(
            "line 1: empty (a request starts with its method and path, a response with its status)"
        )
    headers: list[tuple[str, str]] = []
    encoded = False
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip() or " " in name.strip():
            raise EditError(f"line {number}: {line!r} is not a header (name: value)")
        if name.strip().lower() == _BASE64 and value.strip() == "base64":
            encoded = True
            continue
        headers.append((name.strip(), value.strip()))
    if encoded:
        try:
            return first, headers, base64.b64decode(body.strip(), validate=True)
        except ValueError as exc:
            raise EditError(f"the body is not base64: {exc}") from exc
    return first, headers, body if sep else ""


def _body(doc: dict[str, Any], body: str | bytes) -> dict[str, Any]:
    if isinstance(body, bytes):
        doc["body_base64"] = base64.b64encode(body).decode("ascii")
    else:
        doc["body"] = body
    return doc


def parse_request(text: str) -> dict[str, Any]:
    """The edits a request's text makes: method, path, query, headers, body."""
    first, headers, body = _split(text)
    parts = first.split()
    if len(parts) != 2:
        raise EditError(f"line 1: {first!r}: write the method and the path, like GET /items?page=2")
    method, target = parts
    if not method.isalpha():
        raise EditError(f"line 1: {method!r} is not a method")
    if not target.startswith("/"):
        raise EditError(f"line 1: the path {target!r} must start with /")
    path, _, query = target.partition("?")
    return _body({"method": method.upper(), "path": path, "query": query, "headers": headers}, body)


def parse_response(text: str) -> dict[str, Any]:
    """The edits a response's text makes: status, headers, body."""
    first, headers, body = _split(text)
    status = first.split()[0]
    if not status.isdigit() or not 100 <= int(status) <= 999:
        raise EditError(f"line 1: {first!r}: write the status, like 200")
    return _body({"status": int(status), "headers": headers}, body)
