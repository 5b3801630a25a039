"""Framing: a recorded connection as the frames that carry it, whole or followed.

An ended, packed connection goes out as it is, in one open frame (or in pieces when over the
frame bound); an open one goes as its scope and messages so far, then what it gains, then its
end, and the :class:`Framer` remembers how many of each followed connection's events went.
Frames gather in a :class:`Batch`, written in few large writes. Apart from the producer, which
decides what to send when (its queues and loop), and from the channel, which owns the socket.
"""

from __future__ import annotations

from typing import Any

import msgspec

from asgispy.capture.packing import pack_connection, pack_event_list
from asgispy.capture.record import ConnectionRecord
from asgispy.capture.snapshot import STRIDE, snapshot_message
from asgispy.codec import pack
from asgispy.codec.redact import Redactor
from asgispy.wire.channel import Channel
from asgispy.wire.protocol import CLOSE, EVENTS, OPEN, encode_frame

__all__ = ["Batch", "Framer"]

#: Bytes gathered before a write.
WRITE_AT = 256 * 1024


class Framer:
    """Frames for connections, each within ``max_frame`` bytes; messages masked by ``redactor``
    unless they come from a packed record (masked when it was packed)."""

    def __init__(self, redactor: Redactor | None, max_frame: int) -> None:
        self.redactor = redactor
        self.max_frame = max_frame
        #: open connections being followed: how many of their messages were sent
        self.following: dict[ConnectionRecord, int] = {}

    def behind(self) -> bool:
        """Whether a followed connection holds messages not sent yet (safe from any thread)."""
        for record, sent in list(self.following.items()):
            if record._flat is None or record.count() > sent:
                return True
        return False

    def whole_or_finish(self, record: ConnectionRecord, out: Batch) -> None:
        """A packed connection: whole, or the rest of it if it was followed."""
        sent = self.following.pop(record, None)
        if sent is None:
            self.whole(record, out)
        else:
            self.finish(record, sent, out)

    def whole(self, record: ConnectionRecord, out: Batch) -> None:
        """A packed connection, as it is (nothing encoded again), or in pieces if too large."""
        packed = record.packed
        assert packed is not None
        if len(packed) + 16 <= self.max_frame:
            out.add(encode_frame([OPEN, msgspec.Raw(packed)]))
            return
        seq, kind, started, scope, _, _ = pack.decode(packed)
        opening = [seq, kind, started, pack.pack_value(scope, True), [], None]
        out.add(self._bounded(encode_frame([OPEN, opening]), "its scope alone"))
        self.finish(record, 0, out)

    def begin(self, record: ConnectionRecord, out: Batch) -> None:
        """An open connection: its scope and messages so far; then follow it."""
        if record._flat is None:
            return
        count = _settled(record)
        data = encode_frame([OPEN, msgspec.Raw(pack_connection(record, 0, 0, self.redactor, None))])
        out.add(self._bounded(data, "its scope alone"))
        self.following[record] = 0
        if count:
            self._send_events(record, record.events_between(0, count), 0, out)
        self.following[record] = count

    def more(self, record: ConnectionRecord, out: Batch) -> None:
        """What a followed connection gained since last time."""
        sent = self.following.get(record)
        if record._flat is None or sent is None:
            return
        count = _settled(record)
        self._send_events(record, record.events_between(sent, count), sent, out)
        self.following[record] = count

    def finish(self, record: ConnectionRecord, sent: int, out: Batch) -> None:
        """The rest of a followed connection that has ended (from its packed form), and its end."""
        packed = record.packed
        assert packed is not None
        seq, _, _, _, events, end = pack.decode(packed)
        decoded = [["send" if e[0] else "receive", *e[1:]] for e in events]
        if len(decoded) > sent:
            self._send_events(record, decoded[sent:], sent, out, masked=True)
        out.add(encode_frame([CLOSE, seq, pack.pack_value(end, True)]))

    def _send_events(
        self, record: ConnectionRecord, events: list[Any], first: int, out: Batch, masked: bool = False
    ) -> None:
        """``events``, the connection's from number ``first`` on, in frames within the bound
        (one event too large is cut further)."""
        redactor = None if masked else self.redactor
        index, stop = 0, len(events)

        def frame(start: int, end: int) -> bytes:
            packed = msgspec.Raw(pack_event_list(events, start, end, redactor))
            return encode_frame([EVENTS, record.seq, first + start, packed])

        while index < stop:
            end = min(stop, index + 256)
            data = frame(index, end)
            while len(data) > self.max_frame and end - index > 1:
                end = index + max((end - index) // 2, 1)
                data = frame(index, end)
            if len(data) > self.max_frame:
                # Only with max_body near the frame limit: cut the payload further rather than lose it.
                direction, t, message, cut, wait = events[index][:5]
                smaller, more_cut, _ = snapshot_message(message, self.max_frame // 8)
                event = [direction, t, smaller, {**(cut or {}), **(more_cut or {})} or None, wait]
                data = encode_frame(
                    [EVENTS, record.seq, first + index, msgspec.Raw(pack_event_list([event], 0, 1, redactor))]
                )
            out.add(self._bounded(data, "one of its messages"))
            index = end

    def _bounded(self, data: bytes, what: str) -> bytes:
        if len(data) > self.max_frame:
            raise ValueError(f"{what} is over {self.max_frame} bytes")
        return data


def _settled(record: ConnectionRecord) -> int:
    """How many of an open connection's events can go now: with sends timed, all but a last one
    the app is still sending (its wait, the time the server held it, is not known until send()
    returns)."""
    flat = record._flat
    if flat is None:
        return 0
    count = len(flat) // STRIDE
    if count and record.times_sends and flat[-1] is None and flat[-STRIDE] == "send":
        return count - 1
    return count


class Batch:
    """Frames gathered for one write, written as they reach :data:`WRITE_AT` bytes."""

    __slots__ = ("channel", "frames", "size")

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.frames: list[bytes] = []
        self.size = 0

    def add(self, frame: bytes) -> None:
        self.frames.append(frame)
        self.size += len(frame)
        if self.size >= WRITE_AT:
            self.flush()

    def flush(self) -> None:
        frames = self.frames
        if not frames:
            return
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        count = len(frames)
        self.frames = []
        self.size = 0
        self.channel.write(data, count)
