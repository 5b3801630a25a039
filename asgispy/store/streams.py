"""Streamed response bodies as the records a developer thinks in: SSE events and NDJSON lines.

A streamed body arrives as chunks, each with the time (seconds) it was sent. A live view feeds
every chunk to :class:`SSEParser` or :class:`NDJSONParser` as it arrives and gets back the
records that chunk completed; ``close()`` reports what was left when the stream ended.
:func:`stream_kind` tells from a ``content-type`` which parser applies, :func:`parse_stream`
runs one over a whole recorded body.

Lines are split on bytes, not text. Line ends are ASCII, so no line ends inside a multi-byte
UTF-8 character, and decoding each complete line with ``errors="replace"`` gives exactly the
text that decoding the whole stream incrementally would, while ``size`` stays an exact byte
count even where the stream is not valid UTF-8. Per line the work is a regex step, a slice and
at most one decode; per record one ``orjson.loads``: cheap enough for 100,000-event streams.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import Any, Literal

import orjson

__all__ = [
    "NDJSONParser",
    "RecordKind",
    "SSEParser",
    "StreamKind",
    "StreamRecord",
    "parse_stream",
    "parser_for",
    "stream_kind",
]

RecordKind = Literal["event", "control", "comment", "line"]
StreamKind = Literal["sse", "ndjson"]

_LINE_END = re.compile(rb"\r\n?|\n")
_BOM = b"\xef\xbb\xbf"
_JSON_SPACE = b" \t\r"


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


def _loads(raw: bytes) -> tuple[Any, str | None]:
    try:
        return orjson.loads(raw), None
    except orjson.JSONDecodeError as exc:
        return None, str(exc)


_JSON_FIRST = frozenset('{["-0123456789tfn')


def _json_of(text: str) -> tuple[Any, bool]:
    """The JSON value of SSE data, if it is JSON; most plain text is told apart by its first
    character, sparing the exception, which costs several times a successful parse."""
    if text.lstrip(" \t\r\n")[:1] not in _JSON_FIRST:
        return None, False
    try:
        return orjson.loads(text), True
    except orjson.JSONDecodeError:
        return None, False


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


class SSEParser:
    """Server-sent events, interpreted as the HTML Living Standard's event stream parser does.

    Beyond what a browser dispatches, comment lines (``: keep-alive``) come out as records of
    kind ``"comment"`` (text after the colon, one leading space dropped), because developers
    want to see them. A block without ``data`` dispatches nothing, yet a valid ``id`` or
    ``retry`` in it changes what the browser sends and waits on when it reconnects: such a
    block is a record of kind ``"control"`` (see :class:`StreamRecord` for its ``id``), stamped
    like an event at its blank line. A block whose fields all changed nothing (an ``event``
    alone, a ``retry`` that is not digits) is no record, as nothing happened. The standard
    discards an event the stream ends inside (no blank line yet); :meth:`close` returns it
    instead, marked ``incomplete=True`` and including an unterminated last line, so a viewer
    can show that the stream ended mid-event. :attr:`last_event_id` and
    :attr:`reconnection_time` hold what the fields seen so far left in effect.
    """

    __slots__ = (
        "_after_cr",
        "_at_start",
        "_block",
        "_data",
        "_event",
        "_index",
        "_lf_in_block",
        "_partial",
        "_retry",
        "_set_id",
        "_size",
        "_t",
        "bytes_fed",
        "last_event_id",
        "reconnection_time",
    )

    def __init__(self) -> None:
        self.bytes_fed = 0
        self.last_event_id: str | None = None  # the standard's last event ID buffer
        self.reconnection_time: int | None = None  # the last valid retry field, in ms
        self._partial = bytearray()  # the start of a line whose end has not arrived
        self._index = 0
        self._t = 0.0
        self._at_start = True  # no line seen yet: a BOM may lead the first one
        self._after_cr = False  # the last chunk ended with CR: a leading LF belongs to it
        self._lf_in_block = False  # ... and that LF counts in the event being built
        # The event being built since the last blank line.
        self._data: list[bytes] = []
        self._event = b""
        self._retry: int | None = None
        self._set_id: str | None = None  # the last valid id field
        self._block = False  # a field line has been seen
        self._size = 0

    def feed(self, chunk: bytes, t: float) -> list[StreamRecord]:
        """Take the next chunk, sent at ``t``; return the records it completed, stamped ``t``."""
        self.bytes_fed += len(chunk)
        self._t = t
        if not chunk:
            return []
        if self._after_cr:
            self._after_cr = False
            if chunk[0] == 0x0A:  # the LF of a CR LF split over two chunks: not a new line
                chunk = chunk[1:]
                if self._lf_in_block:
                    self._size += 1
        out: list[StreamRecord] = []
        if b"\r" not in chunk:  # the usual LF-only stream: a plain split beats the regex
            if b"\n" not in chunk:
                self._partial += chunk
                return out
            lines = chunk.split(b"\n")
            if self._partial:
                self._partial += lines[0]
                lines[0] = bytes(self._partial)
                self._partial.clear()
            self._partial += lines.pop()
            for line in lines:
                self._line(line, 1, t, out)
            return out
        start = 0
        end_of_chunk = len(chunk)
        for match in _LINE_END.finditer(chunk):
            end, after = match.span()
            if self._partial:
                self._partial += chunk[start:end]
                line = bytes(self._partial)
                self._partial.clear()
            else:
                line = chunk[start:end]
            in_block = self._line(line, after - end, t, out)
            start = after
            if after == end_of_chunk and after - end == 1 and chunk[end] == 0x0D:
                self._after_cr = True
                self._lf_in_block = in_block
        if start < end_of_chunk:
            self._partial += chunk[start:]
        return out

    def close(self, t: float | None = None) -> list[StreamRecord]:
        """End the stream (at ``t``, else the last chunk's time); return what it ended inside."""
        when = self._t if t is None else t
        out: list[StreamRecord] = []
        self._after_cr = False
        if self._partial:
            line = bytes(self._partial)
            self._partial.clear()
            self._line(line, 0, when, out)
            if out and out[-1].kind == "comment":  # a comment without its line end
                out[-1] = dataclasses.replace(out[-1], incomplete=True)
        if self._block:
            out.append(self._record(when, incomplete=True))
        self._reset()
        return out

    def _line(self, line: bytes, eol: int, t: float, out: list[StreamRecord]) -> bool:
        """Interpret one line; return whether it became part of the event being built."""
        size = len(line)
        if self._at_start:
            self._at_start = False
            if line.startswith(_BOM):
                line = line[3:]
        if not line:
            if self._data or self._set_id is not None or self._retry is not None:
                out.append(self._record(t, incomplete=False))
            self._reset()
            return False
        if line[0] == 0x3A:  # ":"
            text = line[2:] if line[1:2] == b" " else line[1:]
            out.append(StreamRecord("comment", t, self._index, data=_decode(text), size=size))
            self._index += 1
            return False
        field, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if field == b"data":
            self._data.append(value)
        elif field == b"event":
            self._event = value
        elif field == b"id":
            if b"\0" not in value:
                self._set_id = self.last_event_id = _decode(value)
        elif field == b"retry" and value.isdigit():  # bytes.isdigit: ASCII digits only
            self._retry = self.reconnection_time = int(value)
        self._block = True
        self._size += size + eol
        return True

    def _record(self, t: float, *, incomplete: bool) -> StreamRecord:
        """The block being built: an event, or a control record when it is complete without data."""
        if self._data or incomplete:
            data = _decode(b"\n".join(self._data))
            value, is_json = _json_of(data)
            record = StreamRecord(
                "event",
                t,
                self._index,
                event=_decode(self._event) or "message",
                data=data,
                id=self.last_event_id,
                retry=self._retry,
                json=value,
                is_json=is_json,
                incomplete=incomplete,
                size=self._size,
            )
        else:
            record = StreamRecord(
                "control", t, self._index, id=self._set_id, retry=self._retry, size=self._size
            )
        self._index += 1
        return record

    def _reset(self) -> None:
        self._data = []
        self._event = b""
        self._retry = None
        self._set_id = None
        self._block = False
        self._size = 0


class NDJSONParser:
    """One JSON value per line (``application/x-ndjson``, JSON Lines): LF or CR LF line ends.

    Blank lines are skipped. A line that does not parse is still a record, with ``error``
    saying why, so nothing the server sent is lost. A last line without a newline is a record
    too (many servers omit it); it is marked ``incomplete`` only if it does not parse, which is
    what a stream cut off mid-line looks like.
    """

    __slots__ = ("_index", "_partial", "_t", "bytes_fed")

    def __init__(self) -> None:
        self.bytes_fed = 0
        self._partial = bytearray()
        self._index = 0
        self._t = 0.0

    def feed(self, chunk: bytes, t: float) -> list[StreamRecord]:
        """Take the next chunk, sent at ``t``; return the lines it completed, stamped ``t``."""
        self.bytes_fed += len(chunk)
        self._t = t
        if b"\n" not in chunk:
            self._partial += chunk
            return []
        lines = chunk.split(b"\n")
        if self._partial:
            self._partial += lines[0]
            lines[0] = bytes(self._partial)
            self._partial.clear()
        self._partial += lines.pop()
        out: list[StreamRecord] = []
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if line.strip(_JSON_SPACE):
                out.append(self._record(line, t, at_end=False))
        return out

    def close(self, t: float | None = None) -> list[StreamRecord]:
        """End the stream (at ``t``, else the last chunk's time); return its unterminated line."""
        line = bytes(self._partial)
        self._partial.clear()
        if not line.strip(_JSON_SPACE):
            return []
        return [self._record(line, self._t if t is None else t, at_end=True)]

    def _record(self, line: bytes, t: float, *, at_end: bool) -> StreamRecord:
        value, error = _loads(line)
        record = StreamRecord(
            "line",
            t,
            self._index,
            data=_decode(line),
            json=value,
            is_json=error is None,
            error=error,
            incomplete=at_end and error is not None,
            size=len(line),
        )
        self._index += 1
        return record


_KINDS: dict[str, StreamKind] = {
    "text/event-stream": "sse",
    "application/x-ndjson": "ndjson",
    "application/jsonl": "ndjson",
    "application/x-jsonlines": "ndjson",
    "application/jsonlines": "ndjson",
}


def stream_kind(content_type: str | bytes | None) -> StreamKind | None:
    """``"sse"`` or ``"ndjson"`` for a streaming ``content-type`` (parameters ignored), else None."""
    if content_type is None:
        return None
    if isinstance(content_type, bytes):
        content_type = content_type.decode("latin-1")
    return _KINDS.get(content_type.partition(";")[0].strip().lower())


def parser_for(kind: str) -> SSEParser | NDJSONParser:
    """A fresh parser for a :func:`stream_kind` result."""
    if kind == "sse":
        return SSEParser()
    if kind == "ndjson":
        return NDJSONParser()
    raise ValueError(f"unknown stream kind {kind!r}: expected 'sse' or 'ndjson'")


def parse_stream(kind: str, chunks: Iterable[tuple[bytes, float]]) -> list[StreamRecord]:
    """Every record of a whole body given as ``(chunk, time)`` pairs, closed at the last time."""
    parser = parser_for(kind)
    records: list[StreamRecord] = []
    last: float | None = None
    for chunk, last in chunks:
        records += parser.feed(chunk, last)
    records += parser.close(last)
    return records
