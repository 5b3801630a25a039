"""A record in the packed form (MessagePack, secrets masked): whole once ended, or some of its events.

What the history keeps and the wire carries (docs/protocol.md). It runs in the sender's thread
or at export, never on the request path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asgispy.capture.snapshot import STRIDE, RecordedEvent, flat_events
from asgispy.codec import pack
from asgispy.codec.redact import Redactor

if TYPE_CHECKING:
    from asgispy.capture.record import ConnectionRecord

__all__ = ["pack_connection", "pack_event_list", "pack_events"]

_DIRECTION_CODES = {"receive": 0, "send": 1}


def pack_events(events: list[RecordedEvent], start: int, stop: int) -> list[list[Any]]:
    """Events ``start:stop`` as the packed form's ``[direction, t, message, cut, wait]`` lists."""
    codes = _DIRECTION_CODES
    return [[codes[e[0]], e[1], e[2], e[3], e[4]] for e in events[start:stop]]


def pack_record_events(record: ConnectionRecord, start: int, stop: int) -> list[list[Any]]:
    """:func:`pack_events` of a record's events, straight from its flat list while it has one."""
    flat = record._flat
    if flat is None:
        return pack_events(record.events, start, stop)
    codes = _DIRECTION_CODES
    return [[codes[d], t, m, c, w] for d, t, m, c, w in flat_events(flat[start * STRIDE : stop * STRIDE])]


def pack_connection(
    record: ConnectionRecord,
    start: int,
    stop: int,
    redactor: Redactor | None,
    end: list[Any] | None,
    keep_secrets: bool = False,
) -> bytes:
    """The packed connection with events ``start:stop`` (all of them for a whole record)."""
    kind = record.kind[:64]  # a scope type is a short word; a longer one is cut, not refused
    try:
        scope, events, secrets = pack.pack_values(
            record.scope, pack_record_events(record, start, stop), redactor
        )
        data = pack.encode([record.seq, kind, record.started, scope, events, end])
    except (OverflowError, UnicodeEncodeError):
        # An integer beyond 64 bits or text with lone surrogates: look at every value.
        scope, events, secrets = pack.pack_values(
            record.scope, pack_record_events(record, start, stop), redactor, careful=True
        )
        value = [record.seq, kind, record.started, scope, events, pack.pack_value(end, True)]
        data = pack.encode(value)
    if keep_secrets:
        record.secrets = tuple(secrets)
    return data


def pack_event_list(events: list[RecordedEvent], start: int, stop: int, redactor: Redactor | None) -> bytes:
    """Events ``start:stop`` of a connection as a packed array (for a connection still open)."""
    try:
        _, packed, _ = pack.pack_values(None, pack_events(events, start, stop), redactor)
        return pack.encode(packed)
    except (OverflowError, UnicodeEncodeError):
        _, packed, _ = pack.pack_values(None, pack_events(events, start, stop), redactor, careful=True)
        return pack.encode(packed)
