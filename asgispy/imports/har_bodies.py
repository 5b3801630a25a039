"""Bodies: the request's ``postData`` and the response's ``content``, as the bytes they were.

HAR keeps a body as text, or base64 with ``encoding: "base64"``; text is put back in the
charset its Content-Type names (UTF-8 otherwise). Browsers and proxies keep a response
decoded: when its Content-Encoding was undone, the headers that described the encoded form
(Content-Encoding, Content-Length) no longer describe the body held, so they are left out and
a note says what they were. A body the HAR does not hold is empty and marked ``cut`` with its
size, as a recording cut at ``max_body`` is, never made up.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import gzip
import re
import zlib
from typing import Any, NamedTuple
from urllib.parse import urlencode

from asgispy.imports.har_fields import header_value, object_of, text_of
from asgispy.imports.har_file import EntryError

__all__ = ["Body", "request_body", "response_body"]

_CHARSET = re.compile(r"charset\s*=\s*\"?([A-Za-z0-9._:-]+)", re.IGNORECASE)
_CUT = re.compile(r"body cut when recorded: (\d+) of (\d+) bytes kept")
_NO_BODY_STATUSES = (204, 304)


class Body(NamedTuple):
    """A body, its full size when the HAR holds only part of it (else None), and notes."""

    data: bytes
    full: int | None
    notes: list[str]


def _decode_text(container: dict[str, Any], where: str, mime: str) -> bytes | None:
    text = container.get("text")
    if text is None:
        return None
    if not isinstance(text, str):
        raise EntryError(f"{where}.text is not a string")
    if container.get("encoding") == "base64":
        try:
            return base64.b64decode(re.sub(r"\s+", "", text), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise EntryError(f"{where}.text is not valid base64 ({exc})") from exc
    return _charset_bytes(text, mime)


def _charset_bytes(text: str, mime: str) -> bytes:
    match = _CHARSET.search(mime)
    if match:
        try:
            return text.encode(codecs.lookup(match.group(1)).name)
        except (LookupError, UnicodeEncodeError):
            pass
    return text.encode("utf-8", "surrogatepass")


def _size(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _length(headers: list[tuple[bytes, bytes]]) -> int | None:
    value = header_value(headers, b"content-length")
    try:
        return int(value) if value is not None and value.strip().isdigit() else None
    except ValueError:
        return None


def _cut_from_comment(container: dict[str, Any], kept: int) -> int | None:
    """The full size asgispy's own export notes for a body cut when recorded."""
    comment = container.get("comment")
    match = _CUT.search(comment) if isinstance(comment, str) else None
    return int(match.group(2)) if match and int(match.group(1)) == kept else None


def request_body(request: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> Body:
    """The request body from ``postData`` (its ``text``, else its ``params``)."""
    post = request.get("postData")
    size = _size(request.get("bodySize"))
    if post is None or post == {}:
        if size:
            return Body(b"", size, [f"the request body ({size} bytes) is not in the HAR"])
        return Body(b"", None, [])
    if not isinstance(post, dict):
        raise EntryError("request.postData is not an object")
    mime = text_of(post, "mimeType")
    data = _decode_text(post, "request.postData", mime)
    if data is not None:
        return Body(data, _cut_from_comment(post, len(data)), [])
    params = post.get("params")
    if isinstance(params, list) and params:
        return _from_params(params, mime or (header_value(headers, b"content-type") or b"").decode("latin-1"))
    if size:
        return Body(b"", size, [f"the request body ({size} bytes) is not in the HAR"])
    return Body(b"", None, [])


def _from_params(params: list[Any], mime: str) -> Body:
    """A form body rebuilt from ``postData.params``, for a HAR that kept only those."""
    pairs = []
    for p in params:
        if not isinstance(p, dict) or not isinstance(p.get("name"), str):
            raise EntryError("request.postData.params has an item without a name")
        pairs.append(p)
    kind = mime.split(";")[0].strip().lower()
    boundary = re.search(r"boundary=\"?([^\";]+)", mime)
    if kind == "multipart/form-data" and boundary:
        mark = boundary.group(1).encode("latin-1", "replace")
        out = b""
        for p in pairs:
            disposition = f'form-data; name="{p["name"]}"'
            if isinstance(p.get("fileName"), str):
                disposition += f'; filename="{p["fileName"]}"'
            head = f"Content-Disposition: {disposition}\r\n"
            if isinstance(p.get("contentType"), str):
                head += f"Content-Type: {p['contentType']}\r\n"
            value = text_of(p, "value")
            out += b"--" + mark + b"\r\n" + head.encode("utf-8") + b"\r\n" + value.encode("utf-8") + b"\r\n"
        out += b"--" + mark + b"--\r\n"
    else:
        out = urlencode([(p["name"], p.get("value") or "") for p in pairs]).encode("ascii")
    return Body(out, None, ["the request body was rebuilt from the HAR's form fields (postData.params)"])


def _still_encoded(data: bytes, coding: bytes, content: dict[str, Any]) -> bool:
    """Whether ``data`` is still in the Content-Encoding ``coding`` (not undone by the tool)."""
    comment = content.get("comment")
    if isinstance(comment, str) and comment.startswith("body as sent, still"):
        return True
    try:
        if coding in (b"gzip", b"x-gzip"):
            if data[:2] != b"\x1f\x8b":
                return False
            gzip.decompress(data)
            return True
        if coding == b"deflate":
            try:
                zlib.decompress(data)
            except zlib.error:
                zlib.decompress(data, -zlib.MAX_WBITS)
            return True
    except (OSError, EOFError, zlib.error):
        return False
    return False  # br, zstd and others: HAR writers keep the body decoded


def response_body(
    response: dict[str, Any], headers: list[tuple[bytes, bytes]], status: int, head: bool
) -> tuple[Body, list[tuple[bytes, bytes]]]:
    """The response body and the response headers that go with it as held."""
    content = object_of(response, "content")
    mime = text_of(content, "mimeType")
    type_header = header_value(headers, b"content-type")
    data = _decode_text(content, "response.content", type_header.decode("latin-1") if type_header else mime)
    notes: list[str] = []
    if head or status in _NO_BODY_STATUSES:
        if data:
            notes.append(
                f"the HAR holds {len(data)} body bytes (the browser's cache) for a response without a body"
            )
        return Body(b"", None, notes), headers
    length = _length(headers)
    if data is None:
        size = length if length is not None else _size(content.get("size"))
        if size:
            return Body(b"", size, [f"the response body ({size} bytes) is not in the HAR"]), headers
        return Body(b"", None, []), headers
    coding = (header_value(headers, b"content-encoding") or b"").strip().lower()
    if coding and coding != b"identity" and not _still_encoded(data, coding, content):
        dropped = [k for k, _ in headers if k in (b"content-encoding", b"content-length")]
        headers = [(k, v) for k, v in headers if k not in (b"content-encoding", b"content-length")]
        was = f"content-encoding: {coding.decode('latin-1')}"
        if length is not None:
            was += f", content-length: {length}"
        if dropped:
            notes.append(f"the HAR holds the response body decoded; its headers said {was}, left out here")
        return Body(data, None, notes), headers
    full = _cut_from_comment(content, len(data))
    if full is None and length is not None and length != len(data):
        if len(data) < length:
            full = length
            notes.append(f"the HAR holds {len(data)} of the {length} response body bytes")
        else:
            headers = [(k, v) for k, v in headers if k != b"content-length"]
            notes.append(
                f"the HAR holds {len(data)} response body bytes; its content-length: {length}, left out here"
            )
    return Body(data, full, notes), headers
