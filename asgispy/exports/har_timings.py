"""When a HAR entry started and how its time divides into HAR's phases.

ASGI shows no DNS, connect or TLS phase, so those are -1 (unknown), never 0; what the
recording does show (until the app read the request, until it answered, the body) becomes
``send``, ``wait`` and ``receive``, in milliseconds, without overlaps. Time asgispy held the
request or response at a breakpoint is ``blocked``, so ``wait`` stays the app's.
"""

from __future__ import annotations

import datetime

from asgispy.model.connection import Connection

__all__ = ["http_timings", "started", "timings", "total"]


def _ms(seconds: float) -> float:
    return round(max(seconds, 0.0) * 1000, 3)


def started(conn: Connection) -> str:
    """The connection's start as HAR's ``startedDateTime`` (ISO 8601, UTC, milliseconds)."""
    when = datetime.datetime.fromtimestamp(conn.started, tz=datetime.timezone.utc)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def http_timings(conn: Connection) -> dict[str, float]:
    """send: until the app had read the request; wait: until it answered; receive: the body."""
    request_end = 0.0
    response_start: float | None = None
    response_end: float | None = None
    for event in conn.events:
        if event.direction == "receive" and event.type == "http.request":
            request_end = event.t
        elif event.type == "http.response.start" and response_start is None:
            response_start = event.t
        elif event.type == "http.response.body":
            response_end = event.t
    end = conn.duration if conn.duration is not None else (response_end or request_end)
    held = conn.held
    if response_start is None:
        return timings(request_end, max(end - request_end - held, 0.0), 0.0, held)
    # An app may answer before it reads the whole body (an echo streaming it back): the parts
    # must not overlap, or their sum (the entry's time) would exceed the connection's duration.
    sent = min(request_end, response_start)
    return timings(
        sent,
        max(response_start - sent - held, 0.0),
        (response_end if response_end is not None else response_start) - response_start,
        held,
    )


def timings(send: float, wait: float, receive: float, held: float = 0.0) -> dict[str, float]:
    """HAR's ``timings`` from the three phases a recording knows, in seconds; time held at a
    breakpoint is ``blocked`` (queued before it went on), not the server's ``wait``."""
    return {
        "blocked": _ms(held) if held > 0 else -1,
        "dns": -1,
        "connect": -1,
        "ssl": -1,
        "send": _ms(send),
        "wait": _ms(wait),
        "receive": _ms(receive),
    }


def total(phases: dict[str, float]) -> float:
    """The entry's ``time``: the sum of the known phases."""
    return round(sum(v for v in phases.values() if v > 0), 3)
