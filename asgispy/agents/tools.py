"""The tools of ``asgispy mcp``, as plain functions over a store; no MCP here.

Each returns a JSON-ready dict, as compact as it can be while saying everything: an agent
pays for every token, so keys with nothing to say are left out, times are milliseconds and
bodies are bounded. A mistake the agent can correct (a filter it got wrong, an id that is
not there) raises :class:`ToolError`, whose message is written for the agent to act on.

"Make the request, then look" needs to know what is new: :class:`~asgispy.agents.watch.Watch`
numbers connections as they begin and end; that number, the *cursor*, comes back in results,
and :func:`wait_for_connections` waits for connections that end after one.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from typing import Any, Literal, Protocol

from asgispy.agents.errors import ToolError
from asgispy.agents.intercepting import Interception
from asgispy.agents.render import event_fields, masked, ms, plain, target
from asgispy.agents.render_inside import inside_counts, inside_fields, repeated
from asgispy.agents.watch import Watch
from asgispy.analysis.checker import Violation
from asgispy.analysis.rules import RULES, SEVERITIES
from asgispy.exports.line import outcome_word, summary_line
from asgispy.filter.grammar import Filter, FilterError, parse
from asgispy.filter.saved import parse_with_saved
from asgispy.model.connection import Connection
from asgispy.store.store import Store

__all__ = [
    "DEFAULT_MAX_BODY",
    "Inspector",
    "Source",
    "curl_command",
    "get_connection",
    "get_violations",
    "list_connections",
    "session_info",
    "summary",
    "wait_for_connections",
]

#: Bytes of each body (characters of a WebSocket text) shown unless the agent asks for more.
DEFAULT_MAX_BODY = 4096
#: Characters of a traceback shown: its end, where the exception was raised.
TRACEBACK_TAIL = 6000
#: How often a wait looks again when nothing woke it (a session file may have changed).
POLL = 0.25

Severity = Literal["error", "warning", "notice"]


class Source(Protocol):
    """Where the store's connections come from: a session file, or apps streaming live."""

    @property
    def store(self) -> Store: ...

    def refresh(self) -> None:
        """Bring the store up to date (re-read a session file that changed)."""

    def describe(self) -> dict[str, Any]:
        """What the source is, for ``get_session_info``."""

    def hint(self) -> str | None:
        """Why nothing may be arriving, and what to do about it; None when all is well."""


# Summaries -----------------------------------------------------------------------------------


def _clock(epoch: float) -> str:
    """Local time of day, to the millisecond: enough to tell requests apart in a session."""
    return time.strftime("%H:%M:%S", time.localtime(epoch)) + f".{int(epoch % 1 * 1000):03d}"


def _iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch).isoformat(timespec="milliseconds")


def summary(conn: Connection) -> dict[str, Any]:
    """One connection in a few keys: what it was, how it ended, how long, how big."""
    out: dict[str, Any] = {"id": conn.id, "type": conn.type, "at": _clock(conn.started)}
    if conn.type in ("http", "websocket"):
        if conn.method:
            out["method"] = conn.method
        out["path"] = target(conn)
        if conn.status is not None:
            out["status"] = conn.status
    if conn.duration is not None:
        out["duration_ms"] = ms(conn.duration)
    if conn.type == "http":
        if conn.request_bytes:
            out["req_bytes"] = conn.request_bytes
        if conn.response_bytes:
            out["resp_bytes"] = conn.response_bytes
    elif conn.type == "websocket":
        out["frames_in"] = sum(1 for e in conn.events if e.type == "websocket.receive")
        out["frames_out"] = sum(1 for e in conn.events if e.type == "websocket.send")
        if conn.close_code is not None:
            out["close_code"] = conn.close_code
    elif conn.type == "lifespan":
        out["steps"] = " ".join(e.type.removeprefix("lifespan.") for e in conn.events)
    else:
        out["messages"] = len(conn.events)
    if conn.route:
        out["route"] = conn.route
    if conn.outcome != "completed":
        out["outcome"] = outcome_word(conn)[:300] or conn.outcome
    if conn.violations:
        out["violations"] = len(conn.violations)
    if conn.body_cut or conn.events_dropped:
        out["cut"] = True
    if conn.inside:
        out["inside"] = inside_counts(conn)
    return out


def _parse(text: str) -> Filter:
    # The project's saved filters (@slow) work here as on the command line: the server runs in
    # the project, so its asgispy.toml is the one the user's own commands read.
    try:
        return parse_with_saved(text or "")
    except FilterError as exc:
        raise ToolError(
            f"bad filter {text!r}: {exc}. Filters are space-separated terms that must all match, "
            "such as method:POST status:>=400 path:/api/* -type:lifespan, or @name for a saved filter"
        ) from None


def _connection(store: Store, id: str) -> Connection:
    conn = store.get(id.strip())
    if conn is None:
        raise ToolError(
            f"no connection {id!r} here: ids look like '7af777-2' and list_connections gives them "
            f"(this server holds {len(store)}; the oldest are dropped past its limit)"
        )
    return conn


def list_connections(
    store: Store, watch: Watch, filter: str = "", limit: int = 30, since: int | None = None
) -> dict[str, Any]:
    """The newest ``limit`` connections ``filter`` matches (changed after ``since``), oldest first."""
    chosen = _parse(filter)
    connections = list(store)
    if since is not None:
        connections = [c for c in connections if watch.changed_at(c) > since]
    matched = chosen.select(connections)
    shown = matched[-limit:] if limit > 0 else []
    out: dict[str, Any] = {"matched": len(matched), "connections": [summary(c) for c in shown]}
    if len(shown) < len(matched):
        out["more"] = f"{len(matched) - len(shown)} older matches not shown: narrow the filter or raise limit"
    return out


def get_connection(
    store: Store,
    id: str,
    max_body: int = DEFAULT_MAX_BODY,
    event_offset: int = 0,
    max_events: int = 200,
) -> dict[str, Any]:
    """Everything about one connection: its scope, every message, its error and violations."""
    conn = _connection(store, id)
    out = summary(conn)
    del out["at"]
    out["started"] = _iso(conn.started)
    out["scope"] = plain(conn.scope, max_body)
    if conn.handler:
        out["handler"] = plain(conn.handler, max_body)
    if conn.error is not None:
        traceback = conn.error.traceback
        if len(traceback) > TRACEBACK_TAIL:
            traceback = f"[{len(traceback) - TRACEBACK_TAIL} chars cut]…" + traceback[-TRACEBACK_TAIL:]
        out["error"] = {"type": conn.error.type, "message": conn.error.message, "traceback": traceback}
    events = conn.events[event_offset : event_offset + max_events]
    out["events"] = [event_fields(e, max_body) for e in events]
    if len(events) < len(conn.events):
        out["events_total"] = len(conn.events)
        out["events_from"] = event_offset
    if conn.events_dropped:
        out["events_dropped"] = conn.events_dropped
    if conn.violations:
        out["violations"] = [_violation(v) for v in conn.violations]
    middleware = []
    for layer in conn.layers:
        words = layer.changes.words() if layer.changes is not None else []
        if words or layer.error:
            did: dict[str, Any] = {"layer": layer.name, "did": words}
            if layer.error:
                did["error"] = layer.error
            middleware.append(did)
    if middleware:
        out["middleware"] = middleware
    inside = conn.inside
    if inside:  # what the app did meanwhile (calls, SQL, logs), paged with the messages
        out["inside"] = [inside_fields(i) for i in inside[:max_events]]
        if len(inside) > max_events:
            out["inside_total"] = len(inside)
        again = repeated(conn)
        if again:
            out["repeated"] = again
    if conn.notes:
        out["notes"] = conn.notes
    return out


def _violation(v: Violation) -> dict[str, Any]:
    out: dict[str, Any] = {"rule": v.rule, "severity": v.severity, "message": v.message}
    if v.event is not None:
        out["event"] = v.event
    return out


def get_violations(
    store: Store, filter: str = "", severity: Severity = "notice", limit: int = 50
) -> dict[str, Any]:
    """Connections that broke the ASGI spec's rules, what each broke, and what the rules ask."""
    chosen = _parse(filter)
    if severity not in SEVERITIES:
        raise ToolError(f"severity is one of {', '.join(SEVERITIES)}, not {severity!r}")
    worst = SEVERITIES.index(severity)
    found = []
    counts: dict[str, int] = dict.fromkeys(SEVERITIES, 0)
    for conn in chosen.select(store):
        broken = [v for v in conn.violations if v.severity in SEVERITIES[: worst + 1]]
        if broken:
            found.append((conn, broken))
            for v in broken:
                counts[v.severity] += 1
    shown = found[-limit:] if limit > 0 else []
    rules = sorted({v.rule for _, broken in shown for v in broken})
    out: dict[str, Any] = {
        "connections": [
            {
                "id": c.id,
                "line": summary_line(masked(c), with_time=False),
                "violations": [_violation(v) for v in broken],
            }
            for c, broken in shown
        ],
        "counts": {k: n for k, n in counts.items() if n},
        "rules": {r: RULES[r].title if r in RULES else "" for r in rules},
    }
    if len(shown) < len(found):
        out["more"] = f"{len(found) - len(shown)} older connections with violations not shown"
    return out


def curl_command(store: Store, id: str, base_url: str | None = None) -> dict[str, Any]:
    """A curl command that sends the connection's request again (secrets stay masked)."""
    from asgispy.exports.curl import to_curl

    if base_url is not None and not base_url.startswith(("http://", "https://")):
        raise ToolError(f"base_url must look like http://127.0.0.1:8000, not {base_url!r}")
    conn = _connection(store, id)
    if conn.type != "http":
        raise ToolError(f"{conn.id} is a {conn.type} connection: curl replays HTTP requests only")
    return {"id": conn.id, "curl": to_curl(masked(conn), base_url or None)}


def session_info(source: Source) -> dict[str, Any]:
    """Where the connections come from, who recorded them, and how many of what there are."""
    store = source.store
    by_type: dict[str, int] = {}
    open_count = 0
    first = last = None
    for conn in store:
        by_type[conn.type] = by_type.get(conn.type, 0) + 1
        open_count += conn.outcome == "open"
        first = conn.started if first is None else min(first, conn.started)
        last = conn.started if last is None else max(last, conn.started)
    described = source.describe()
    out: dict[str, Any] = {"source": described, "connections": len(store), "by_type": by_type}
    if open_count:
        out["open"] = open_count
    errors = len(parse("error").select(store))
    if errors:
        out["errors"] = errors
    violations = {k: n for k, n in store.violation_counts().items() if n}
    if violations:
        out["violations"] = violations
    if first is not None and last is not None:
        out["from"], out["to"] = _iso(first), _iso(last)
    producers = []
    for tag, state in store.producers.items():
        info = state.info
        producer: dict[str, Any] = {"tag": tag, "app": info.app, "pid": info.pid, "host": info.host}
        if state.dropped:
            producer["dropped"] = state.dropped
        if described.get("kind") == "live":
            producer["connected"] = state.connected
        producers.append(producer)
    out["producers"] = producers
    if store.evicted:
        out["evicted"] = store.evicted
    hint = source.hint()
    if hint and "problem" not in described:
        out["hint"] = hint
    return out


async def wait_for_connections(
    source: Source,
    watch: Watch,
    filter: str = "",
    timeout: float = 10.0,
    count: int = 1,
    since: int | None = None,
) -> dict[str, Any]:
    """Wait until ``count`` connections that ``filter`` matches have ended after cursor ``since``
    (by default, the cursor of the last result the agent was given)."""
    chosen = _parse(filter)
    start = watch.seen if since is None else since
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        source.refresh()
        found = chosen.select(watch.ended_after(source.store, start))
        remaining = deadline - loop.time()
        if len(found) >= count or remaining <= 0:
            break
        await watch.sleep(min(remaining, POLL))
    out: dict[str, Any] = {"connections": [summary(c) for c in found[-50:]]}
    if len(found) < count:
        out["timed_out"] = True
        still_open = [
            c for c in source.store if c.outcome == "open" and watch.began_at(c) > start and chosen(c)
        ]
        if still_open:
            out["still_open"] = [summary(c) for c in still_open[-20:]]
        hint = source.hint()
        if hint:
            out["hint"] = hint
    return out


class Inspector:
    """The tools bound to one source: each call reads the source fresh, and the results that
    carry a cursor move the agent's default starting point for waits."""

    def __init__(self, source: Source, watch: Watch) -> None:
        self.source = source
        self.watch = watch

    @property
    def store(self) -> Store:
        self.source.refresh()
        return self.source.store

    def interception(self) -> Interception:
        """The tools that change traffic, bound to this source (its collector, when live)."""
        return Interception(self.store, getattr(self.source, "collector", None))

    def list_connections(self, filter: str = "", limit: int = 30, since: int | None = None) -> dict[str, Any]:
        out = list_connections(self.store, self.watch, filter, limit, since)
        if not out["matched"]:
            hint = self.source.hint()
            if hint:
                out["hint"] = hint
        out["cursor"] = self.watch.mark()
        return out

    def get_connection(
        self, id: str, max_body: int = DEFAULT_MAX_BODY, event_offset: int = 0, max_events: int = 200
    ) -> dict[str, Any]:
        return get_connection(self.store, id, max_body, event_offset, max_events)

    def get_violations(
        self, filter: str = "", severity: Severity = "notice", limit: int = 50
    ) -> dict[str, Any]:
        return get_violations(self.store, filter, severity, limit)

    def curl_command(self, id: str, base_url: str | None = None) -> dict[str, Any]:
        return curl_command(self.store, id, base_url)

    def session_info(self) -> dict[str, Any]:
        self.source.refresh()
        out = session_info(self.source)
        out["cursor"] = self.watch.mark()
        return out

    async def wait_for_connections(
        self, filter: str = "", timeout: float = 10.0, count: int = 1, since: int | None = None
    ) -> dict[str, Any]:
        out = await wait_for_connections(self.source, self.watch, filter, timeout, count, since)
        out["cursor"] = self.watch.mark()
        return out
