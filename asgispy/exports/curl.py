"""A recorded HTTP request as a curl command a developer can paste into a shell to replay it.

The command reproduces what the app received: method, URL, headers (but those curl manages
itself) and the body byte for byte. curl's own defaults that the original request lacked
(User-Agent, Accept, a form Content-Type) are switched off, so the server sees the same
request. Values redacted at recording stay ``[redacted]``, with a note above the command;
a body that was cut, or is too large to inline, is read from a file the note names.
"""

from __future__ import annotations

import base64
import shlex
from urllib.parse import urlsplit

from asgispy.codec.jsonform import bytes_text
from asgispy.codec.redact import REDACTED
from asgispy.exports.url import request_url
from asgispy.model.connection import Connection

__all__ = ["BODY_FILE", "to_curl"]

#: The file a body that cannot be inlined is read from (``--data-binary @request-body.bin``).
BODY_FILE = "request-body.bin"
#: Bodies larger than this are not inlined into the command.
MAX_INLINE = 64 * 1024

# Headers that describe one hop or that curl computes from its other options.
_SKIP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"te",
        b"trailer",
        b"upgrade",
        b"content-length",
        b"expect",
        b"http2-settings",
    }
)
# curl's defaults, switched off with an empty ``-H 'Name:'`` when the request had none.
_CURL_DEFAULTS = (b"user-agent", b"accept")
_CONTINUE = " \\\n  "


def to_curl(conn: Connection, base_url: str | None = None, *, max_inline: int = MAX_INLINE) -> str:
    """The curl command for an HTTP connection's request.

    ``base_url`` (``http://host:port``) sends it elsewhere than where it was recorded; the
    recorded Host header then goes along, so the app sees the very same request.
    """
    if conn.type != "http":
        raise ValueError(f"curl replays HTTP requests; {conn.id} is a {conn.type} connection")
    method = (conn.method or "GET").upper()
    url = request_url(conn, base_url)
    headers = conn.request_headers
    names = {name.lower() for name, _ in headers}
    body = conn.request_body()
    has_body = bool(body) or b"content-length" in names or b"transfer-encoding" in names
    notes: list[str] = []
    pipe = ""

    first = ["curl"]
    if method == "HEAD":
        first.append("--head")
    elif (has_body and method != "POST") or (not has_body and method != "GET"):
        first.append(f"-X {shlex.quote(method)}")
    first.append(shlex.quote(url))
    options = [" ".join(first)]
    if any(b"gzip" in value.lower() for name, value in headers if name.lower() == b"accept-encoding"):
        options.append("--compressed")
    if conn.scope.get("http_version") == "1.0":
        options.append("--http1.0")

    netloc = urlsplit(url).netloc.lower()
    for name, value in headers:
        lname = name.lower()
        if lname in _SKIP or lname.startswith(b":"):
            continue
        if lname == b"host" and value.decode("latin-1").lower() == netloc:
            continue
        if value == REDACTED:
            notes.append(f"{name.decode('latin-1')} was redacted when recorded: put its real value back")
        options.append("-H " + _quote(name + b": " + value))
    for default in _CURL_DEFAULTS:
        if default not in names:
            options.append("-H " + _quote(default.title() + b":"))

    if has_body:
        chunked = any(
            b"chunked" in value.lower() for name, value in headers if name.lower() == b"transfer-encoding"
        )
        if chunked:
            # Sent in chunks, with no Content-Length (a streamed upload): curl does the same when told.
            options.append("-H 'Transfer-Encoding: chunked'")
        if b"content-type" not in names:
            options.append("-H 'Content-Type:'")  # else curl would add a form content type
        cut = _cut_size(conn)
        if cut is not None:
            notes.append(
                f"the request body was cut when recorded ({len(body)} of {cut} bytes kept): "
                f"save the whole body as {BODY_FILE}"
            )
            options.append(f"--data-binary @{BODY_FILE}")
        elif len(body) > max_inline:
            notes.append(f"the request body is {len(body)} bytes: save it as {BODY_FILE}")
            options.append(f"--data-binary @{BODY_FILE}")
        elif b"\x00" in body:
            # A shell argument cannot hold a NUL byte: feed the body through stdin instead.
            pipe = f"printf %s {base64.b64encode(body).decode('ascii')} | base64 --decode | "
            options.append("--data-binary @-")
        else:
            options.append("--data-binary " + _quote(body))

    command = pipe + _CONTINUE.join(options)
    return "".join(f"# {note}\n" for note in notes) + command


def _cut_size(conn: Connection) -> int | None:
    """The body's true size when the recording cut it, else None."""
    total = 0
    cut = False
    for event in conn.events:
        if event.direction == "receive" and event.type == "http.request":
            size = event.field_size("body")
            total += size
            cut = cut or bool(event.cut and "body" in event.cut)
    return total if cut else None


_TEXT_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _quote(data: bytes) -> str:
    """``data`` as one shell word: plain single quotes for tidy text, else bash's ``$'...'``.

    Tabs and carriage returns are escaped too: pasted raw into a terminal they could act as
    key presses. ``data`` holds no NUL byte (no shell argument can).
    """
    text = bytes_text(data)
    if text is not None:
        if "\r" not in text and "\t" not in text:
            return "'" + text.replace("'", "'\"'\"'") + "'"  # always quoted: tidier
        return "$'" + "".join(_TEXT_ESCAPES.get(c, c) for c in text) + "'"
    return "$'" + "".join(_byte_escape(b) for b in data) + "'"


def _byte_escape(byte: int) -> str:
    char = chr(byte)
    if char in _TEXT_ESCAPES:
        return _TEXT_ESCAPES[char]
    if 0x20 <= byte < 0x7F:
        return char
    return f"\\x{byte:02x}"
