"""One record of a streamed body (an SSE event, control block or comment; an NDJSON line), and
the small decoding steps the parsers share."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Literal

import orjson

__all__ = [
    "BOM",
    "JSON_SPACE",
    "LINE_END",
    "RecordKind",
    "StreamKind",
    "StreamRecord",
    "decode_line",
    "json_of",
    "loads_line",
]

RecordKind = Literal["event", "control", "comment", "line"]
StreamKind = Literal["sse", "ndjson"]

#: a line ends at CR LF, CR or LF, in both formats
LINE_END = re.compile(rb"\r\n?|\n")
#: a byte-order mark an SSE stream may start with, skipped
BOM = b"\xef\xbb\xbf"
#: the white space around an NDJSON line that is not part of its value
JSON_SPACE = b" \t\r"


@dataclasses.dataclass(frozen=True, slots=True)
class StreamRecord:
    """One event, control block, comment or line of a streamed body.

    ``size`` counts the record's bytes in the stream, line ends included except the one that
    completes the record (an SSE event's blank line, a comment's or NDJSON line's own end):
    that line end can be a CR LF split over two chunks, and leaving it out keeps every record
    the same however the stream was chunked.
    """

    kind: RecordKind
    t: float  # when the chunk holding the record's last byte was sent
    index: int  # 0-based order among this stream's records
    event: str = ""  # SSE event type ("message" when none was set); "" for other kinds
    data: str = ""  # SSE event data or comment text; an NDJSON line's text without its line end
    # An event's: the SSE last event id in effect at dispatch. A control block's: the id it set
    # ("" when an empty ``id`` cleared it), None when it set none.
    id: str | None = None
    retry: int | None = None  # an SSE retry field (ms) seen in this event or control block
    json: Any = None  # the parsed JSON of ``data`` when ``is_json``
    is_json: bool = False  # tells a JSON ``null`` from data that is not JSON
    error: str | None = None  # why an NDJSON line did not parse
    incomplete: bool = False  # the stream ended inside this record
    size: int = 0


def loads_line(raw: bytes) -> tuple[Any, str | None]:
    """An NDJSON line's JSON value, or None and why it is not JSON."""
    try:
        return orjson.loads(raw), None
    except orjson.JSONDecodeError as exc:
        return None, str(exc)


_JSON_FIRST = frozenset('{["-0123456789tfn')


def json_of(text: str) -> tuple[Any, bool]:
    """The JSON value of SSE data, if it is JSON; most plain text is told apart by its first
    character, sparing the exception, which costs several times a successful parse."""
    if text.lstrip(" \t\r\n")[:1] not in _JSON_FIRST:
        return None, False
    try:
        return orjson.loads(text), True
    except orjson.JSONDecodeError:
        return None, False


def decode_line(raw: bytes) -> str:
    """A complete line as text; bytes that are not UTF-8 become U+FFFD, never an error."""
    return raw.decode("utf-8", "replace")
