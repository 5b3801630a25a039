"""Server-sent events (``text/event-stream``), parsed chunk by chunk as a browser reads them."""

from __future__ import annotations

import dataclasses

from asgispy.analysis.streamrecord import BOM, LINE_END, StreamRecord, decode_line, json_of

__all__ = ["SSEParser"]


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
        for match in LINE_END.finditer(chunk):
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
            if line.startswith(BOM):
                line = line[3:]
        if not line:
            if self._data or self._set_id is not None or self._retry is not None:
                out.append(self._record(t, incomplete=False))
            self._reset()
            return False
        if line[0] == 0x3A:  # ":"
            text = line[2:] if line[1:2] == b" " else line[1:]
            out.append(StreamRecord("comment", t, self._index, data=decode_line(text), size=size))
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
                self._set_id = self.last_event_id = decode_line(value)
        elif field == b"retry" and value.isdigit():  # bytes.isdigit: ASCII digits only
            self._retry = self.reconnection_time = int(value)
        self._block = True
        self._size += size + eol
        return True

    def _record(self, t: float, *, incomplete: bool) -> StreamRecord:
        """The block being built: an event, or a control record when it is complete without data."""
        if self._data or incomplete:
            data = decode_line(b"\n".join(self._data))
            value, is_json = json_of(data)
            record = StreamRecord(
                "event",
                t,
                self._index,
                event=decode_line(self._event) or "message",
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
