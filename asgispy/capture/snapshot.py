"""The copies Spy takes on the request path: cheap, and of only what the app or server could change later.

A message dict, its header list and its payload (a bytearray becomes bytes; a payload over
``max_body`` is cut, its size noted) are copied; nothing is decoded, encoded or looked into
further. Everything else happens off the request path.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from asgispy.types import PAYLOAD_FIELDS, Message, Scope

__all__ = [
    "STRIDE",
    "RecordedEvent",
    "flat_events",
    "snapshot_copy",
    "snapshot_message",
    "snapshot_scope",
    "unflatten",
]

#: ``[direction, t, message copy, {field: original size} or None, wait or None]``: ``t`` is the
#: time since the connection began at which the app got the message (receive) or handed it over
#: (send); ``wait`` how long the app spent inside that ``receive()`` or ``send()`` call (None
#: for a send untimed, see Spy's ``time_sends``, or still in progress, or when the call raised
#: before it could be timed).
RecordedEvent = list[Any]
#: Items per event in a running record's flat list of events (see ConnectionRecord.events).
STRIDE = 5


def flat_events(flat: list[Any]) -> Iterator[tuple[Any, ...]]:
    """The events of a flat list, ``STRIDE`` items each, one tuple at a time."""
    items = iter(flat)
    return zip(*([items] * STRIDE), strict=False)


def unflatten(flat: list[Any]) -> list[RecordedEvent]:
    """A flat list of events as one list per event."""
    return [list(event) for event in flat_events(flat)]


def snapshot_message(message: Message, max_body: int) -> tuple[dict[str, Any], dict[str, int] | None, int]:
    """Copy ``message`` cheaply; cut payloads over ``max_body``. Returns (copy, cut, payload size)."""
    return snapshot_copy(dict(message), max_body)


def snapshot_copy(copy: dict[str, Any], max_body: int) -> tuple[dict[str, Any], dict[str, int] | None, int]:
    """:func:`snapshot_message` of a copy the caller made (Spy makes it to test the common case first)."""
    # ``in`` before reading: most messages lack most of these keys, and the test is cheaper than ``get``.
    if "headers" in copy:
        headers = copy["headers"]
        if type(headers) is list:
            copy["headers"] = headers.copy()
    cut = None
    size = 0
    for field in PAYLOAD_FIELDS:
        if field not in copy:
            continue
        value = copy[field]
        if value is None:
            continue
        kind = type(value)
        if kind is not bytes and kind is not str:
            if not isinstance(value, (bytearray, memoryview)):
                continue
            full = len(value)
            copy[field] = value = bytes(value[:max_body])
        else:
            full = len(value)
            if full > max_body:
                copy[field] = value = value[:max_body]
        if full > max_body:
            cut = {**(cut or {}), field: full}
        size += len(value)
    return copy, cut, size


def snapshot_scope(scope: Scope) -> dict[str, Any]:
    """Copy the scope and the containers in it that live on after the connection began: its
    header list, its state (the server's per-request copy, which the app may write to) and
    extensions."""
    copy = scope.copy() if type(scope) is dict else dict(scope)
    # Unrolled: this runs once per connection; servers give a list of headers and a dict of state.
    value = copy.get("headers")
    if type(value) is list or type(value) is dict:
        copy["headers"] = value.copy()
    value = copy.get("state")
    if type(value) is dict or type(value) is list:
        copy["state"] = value.copy()
    if "extensions" in copy:
        value = copy["extensions"]
        if type(value) is dict or type(value) is list:
            copy["extensions"] = value.copy()
    return copy
