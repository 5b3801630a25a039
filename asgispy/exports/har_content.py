"""The bodies of a HAR entry: the request's ``postData`` and the response's ``content``.

A body is text when it decodes, else base64; a gzip or deflate response is shown decompressed,
as a browser would show it, with ``compression`` saying what the wire saved. What the
recording lacks is said: a body cut at ``max_body`` carries a comment with its true size.
"""

from __future__ import annotations

import base64
import gzip
import zlib
from typing import Any
from urllib.parse import parse_qsl

from asgispy.codec import jsonform
from asgispy.exports.url import header
from asgispy.model.connection import Connection

__all__ = ["body_size", "mime_type", "post_data", "response_content", "text_or_base64"]


def mime_type(headers: list[tuple[bytes, bytes]], default: str = "x-unknown") -> str:
    """The Content-Type header, or ``default`` without one."""
    value = header(headers, b"content-type")
    return value.decode("latin-1") if value else default


def body_size(conn: Connection, direction: str, kind: str) -> tuple[int, int | None]:
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


def text_or_base64(data: bytes) -> tuple[str, str | None]:
    """``(text, None)`` when ``data`` reads as text, else ``(base64, "base64")``."""
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


def post_data(conn: Connection) -> dict[str, Any] | None:
    """The request body as HAR's ``postData`` (form fields as ``params``); None without a body."""
    full, kept = body_size(conn, "receive", "http.request")
    body = conn.request_body()
    if full == 0 and not body:
        return None
    mime = mime_type(conn.request_headers, "application/octet-stream")
    text, encoding = text_or_base64(body)
    post: dict[str, Any] = {"mimeType": mime, "params": [], "text": text}
    if encoding:
        post["encoding"] = encoding  # not in HAR 1.2's postData, but what readers understand
    if mime.split(";")[0].strip().lower() == "application/x-www-form-urlencoded" and encoding is None:
        post["params"] = [{"name": k, "value": v} for k, v in parse_qsl(text, keep_blank_values=True)]
    if kept is not None:
        post["comment"] = f"body cut when recorded: {kept} of {full} bytes kept"
    return post


def response_content(conn: Connection, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """The response body as HAR's ``content``, decompressed when it can be."""
    full, kept = body_size(conn, "send", "http.response.body")
    body = conn.response_body()
    content: dict[str, Any] = {"size": full, "mimeType": mime_type(headers)}
    if not body:
        if kept is not None:
            content["comment"] = f"body cut when recorded: 0 of {full} bytes kept"
        else:
            content["text"] = ""  # known to be empty: readers expect the field (haralyzer does)
        return content
    encoding = header(headers, b"content-encoding")
    plain = _decompressed(body, encoding) if kept is None else None
    if plain is not None and plain is not body:
        content["size"] = len(plain)
        content["compression"] = len(plain) - full
        body = plain
    text, b64 = text_or_base64(body)
    content["text"] = text
    if b64:
        content["encoding"] = b64
    if kept is not None:
        content["comment"] = f"body cut when recorded: {kept} of {full} bytes kept"
    elif encoding and plain is None:
        content["comment"] = f"body as sent, still {encoding.decode('latin-1')}-encoded"
    return content
