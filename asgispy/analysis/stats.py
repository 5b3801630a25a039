"""Statistics over many connections: per group, how many, how many failed, how long they took.

Pure computation over :class:`~asgispy.model.connection.Connection` lists (no I/O), shared by
``asgispy stats`` and the dashboard's statistics screen.

What counts, and how:

- Lifespan connections are not requests: they are left out of every table and series.
- HTTP and WebSocket connections are counted, and their errors and client errors too; only HTTP
  connections give durations and times to first byte (a WebSocket's duration is how long the
  client stayed, not how fast the app answered, and would swamp the percentiles).
- An *error* is a 5xx status or an app exception (counted once when both); a *client error* is a
  4xx status (a WebSocket closed before it was accepted is a 403).
- Open connections count, but have no duration yet; their time to first byte counts once known.
- Percentiles are nearest-rank: the smallest value with at least p% of the values at or below it,
  so every figure is one that was measured, never an interpolation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from asgispy.model.connection import Connection

__all__ = [
    "GROUPINGS",
    "Bucket",
    "Change",
    "GroupStats",
    "Grouping",
    "Percentiles",
    "compare",
    "group_key",
    "nearest_rank",
    "series",
    "table",
]

Grouping = Literal["route", "path", "endpoint", "status"]
GROUPINGS: tuple[Grouping, ...] = ("route", "path", "endpoint", "status")

#: the percentiles every table shows
QUANTILES = (50, 90, 99)


def nearest_rank(ordered: Sequence[float], p: float) -> float | None:
    """The p-th percentile of ``ordered`` (sorted, ascending) by nearest rank; None when empty."""
    if not ordered:
        return None
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True)
class Percentiles:
    """p50, p90, p99 and max of some seconds (None each when there were none)."""

    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    max: float | None = None

    @classmethod
    def of(cls, values: Iterable[float]) -> Percentiles:
        ordered = sorted(values)
        p50, p90, p99 = (nearest_rank(ordered, q) for q in QUANTILES)
        return cls(p50, p90, p99, ordered[-1] if ordered else None)

    def document(self) -> dict[str, float | None]:
        return {"p50": self.p50, "p90": self.p90, "p99": self.p99, "max": self.max}


@dataclass
class GroupStats:
    """One group's figures: a row of the table."""

    key: str
    count: int = 0
    errors: int = 0
    client_errors: int = 0
    websockets: int = 0
    open: int = 0
    request_bytes: int = 0
    response_bytes: int = 0
    duration: Percentiles = field(default_factory=Percentiles)
    ttfb: Percentiles = field(default_factory=Percentiles)
    #: the HTTP durations this group's percentiles came from, ascending (for a histogram)
    durations: list[float] = field(default_factory=list, repr=False)

    @property
    def error_rate(self) -> float:
        return self.errors / self.count if self.count else 0.0

    def document(self) -> dict[str, Any]:
        """The group as ``asgispy stats --json`` writes it (seconds and bytes)."""
        n = self.count
        return {
            "key": self.key,
            "count": n,
            "errors": self.errors,
            "client_errors": self.client_errors,
            "websockets": self.websockets,
            "open": self.open,
            "duration": self.duration.document(),
            "ttfb": self.ttfb.document(),
            "request_bytes": {"total": self.request_bytes, "mean": self.request_bytes / n if n else None},
            "response_bytes": {"total": self.response_bytes, "mean": self.response_bytes / n if n else None},
        }


def is_error(conn: Connection) -> bool:
    """A 5xx status or an exception the app raised."""
    return conn.outcome == "exception" or (conn.status is not None and conn.status >= 500)


def is_client_error(conn: Connection) -> bool:
    return conn.status is not None and 400 <= conn.status < 500 and conn.outcome != "exception"


def _name(conn: Connection, where: str) -> str:
    method = conn.method if conn.type == "http" else "WS"
    return f"{method} {where}" if method else where


def group_key(conn: Connection, by: Grouping) -> str:
    """The group ``conn`` falls in: ``GET /orders/{id}`` by route (the template the framework
    matched, else the path), ``GET /orders/7`` by path, the handler's qualified name by endpoint
    (else the route key), the status code by status (``-`` before there is one)."""
    if by == "status":
        return str(conn.status) if conn.status is not None else "-"
    if by == "path":
        return _name(conn, conn.path)
    if by == "endpoint":
        name = conn.handler.get("endpoint") if conn.handler else None
        if name:
            return str(name)
    return _name(conn, conn.route or conn.path)


def counted(conns: Iterable[Connection]) -> list[Connection]:
    """The connections statistics count: every one but lifespan."""
    return [c for c in conns if c.type in ("http", "websocket")]


def table(conns: Iterable[Connection], by: Grouping = "route") -> list[GroupStats]:
    """One :class:`GroupStats` per group, busiest first (then by key)."""
    groups: dict[str, list[Connection]] = {}
    for conn in counted(conns):
        groups.setdefault(group_key(conn, by), []).append(conn)
    rows = [_group(key, members) for key, members in groups.items()]
    rows.sort(key=lambda g: (-g.count, g.key))
    return rows


def total(conns: Iterable[Connection]) -> GroupStats:
    """Every counted connection as one group, keyed ``(all)``."""
    return _group("(all)", counted(conns))


def _group(key: str, members: list[Connection]) -> GroupStats:
    stats = GroupStats(key)
    durations: list[float] = []
    ttfbs: list[float] = []
    for conn in members:
        stats.count += 1
        stats.errors += is_error(conn)
        stats.client_errors += is_client_error(conn)
        stats.open += conn.outcome == "open"
        stats.request_bytes += conn.request_bytes
        stats.response_bytes += conn.response_bytes
        if conn.type != "http":
            stats.websockets += 1
            continue
        if conn.duration is not None:
            durations.append(conn.duration)
        if conn.ttfb is not None:
            ttfbs.append(conn.ttfb)
    durations.sort()
    stats.durations = durations
    stats.duration = Percentiles.of(durations)
    stats.ttfb = Percentiles.of(ttfbs)
    return stats


# Comparing two tables -----------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One key in two tables: its figures before and after (None where it was absent)."""

    key: str
    before: GroupStats | None
    after: GroupStats | None

    def delta(self, measure: Callable[[GroupStats], float | None]) -> float | None:
        """``measure`` after less before; None when either side has none."""
        if self.before is None or self.after is None:
            return None
        old, new = measure(self.before), measure(self.after)
        return None if old is None or new is None else new - old

    def ratio(self, measure: Callable[[GroupStats], float | None]) -> float | None:
        """``measure`` after over before (1.5 is 50% more); None when unknown or before was 0."""
        if self.before is None or self.after is None:
            return None
        old, new = measure(self.before), measure(self.after)
        return None if old is None or new is None or old == 0 else new / old

    def document(self) -> dict[str, Any]:
        def p50(g: GroupStats) -> float | None:
            return g.duration.p50

        def p90(g: GroupStats) -> float | None:
            return g.duration.p90

        def p99(g: GroupStats) -> float | None:
            return g.duration.p99

        return {
            "key": self.key,
            "before": self.before.document() if self.before else None,
            "after": self.after.document() if self.after else None,
            "change": {
                "count": self.delta(lambda g: g.count),
                "errors": self.delta(lambda g: g.errors),
                "duration": {"p50": self.delta(p50), "p90": self.delta(p90), "p99": self.delta(p99)},
                "duration_ratio": {"p50": self.ratio(p50), "p90": self.ratio(p90), "p99": self.ratio(p99)},
            },
        }


def compare(before: Sequence[GroupStats], after: Sequence[GroupStats]) -> list[Change]:
    """Each key of either table once: the keys of ``before`` in its order, then those new in ``after``."""
    old = {g.key: g for g in before}
    new = {g.key: g for g in after}
    keys = list(old) + [k for k in new if k not in old]
    return [Change(k, old.get(k), new.get(k)) for k in keys]


# Over time ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bucket:
    """Connections that began in [start, start + width): how many, and how many failed."""

    start: float
    width: float
    requests: int
    errors: int


#: bucket widths to pick from, in seconds: a round one, never more than ``buckets`` of them
_WIDTHS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400)


def series(conns: Iterable[Connection], buckets: int = 60, width: float | None = None) -> list[Bucket]:
    """Requests and errors per time bucket, from the first connection's start to the last's.

    The width is the roundest of a second's fractions and multiples that needs no more than
    ``buckets`` buckets (``width`` picks one instead); empty buckets are kept, so a gap in the
    traffic shows as a gap.
    """
    items = counted(conns)
    if not items:
        return []
    starts = [c.started for c in items]
    first, last = min(starts), max(starts)
    if width is None:
        # Counted from the floored origin, as the buckets are: never one more than asked.
        width = float(
            next(
                (w for w in _WIDTHS if math.floor(last / w) - math.floor(first / w) + 1 <= buckets),
                _WIDTHS[-1],
            )
        )
    origin = min(math.floor(first / width) * width, first)  # float rounding may floor above it
    count = int((last - origin) // width) + 1
    requests = [0] * count
    errors = [0] * count
    for conn in items:
        index = max(0, min(int((conn.started - origin) // width), count - 1))
        requests[index] += 1
        errors[index] += is_error(conn)
    return [Bucket(origin + i * width, width, requests[i], errors[i]) for i in range(count)]
