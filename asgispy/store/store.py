"""The store: every connection the viewers know of, grouped by producer, bounded in memory.

It is fed documents (by the collector from the wire, or from a saved session) and tells
its subscribers what changed. Each connection is judged as it grows (the protocol checker,
then what its layers did: :mod:`asgispy.analysis.judge`). It knows nothing of sockets or
screens: the dashboard, the recorder and the exports all read the same store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from asgispy.analysis.judge import Judge
from asgispy.model.connection import Connection
from asgispy.model.event import Event
from asgispy.model.session import ProducerInfo, Session

__all__ = ["Change", "ProducerState", "Store"]

ChangeKind = Literal["open", "event", "close", "evict", "clear", "producer", "held"]
_CONNECTION_OVERHEAD = 2048
_EVENT_OVERHEAD = 256


@dataclass(frozen=True)
class Change:
    """What a subscriber is told: the kind of change and the connection it touched, if any."""

    kind: ChangeKind
    connection: Connection | None = None
    producer: str | None = None


@dataclass
class ProducerState:
    """A producer as the store knows it: who it is, whether it is still attached, its losses."""

    info: ProducerInfo
    connected: bool = True
    dropped: int = 0
    connections: int = 0
    events: int = 0
    first_seen: float = field(default_factory=time.time)
    last_seen: float = field(default_factory=time.time)
    #: whether it may be controlled (an app made with intercept=True), and what it last said of
    #: its rules and breakpoints (see asgispy.intercept.control)
    controllable: bool = False
    control: dict[str, Any] | None = None


class Store:
    """Connections in arrival order; the oldest finished ones are evicted past the bounds."""

    def __init__(self, max_connections: int = 50_000, max_bytes: int = 1024 * 1024 * 1024) -> None:
        self.max_connections = max_connections
        self.max_bytes = max_bytes
        self.connections: dict[str, Connection] = {}
        self.producers: dict[str, ProducerState] = {}
        self.events_total = 0
        self.evicted = 0
        self.used = 0
        self._sizes: dict[str, int] = {}
        #: the judges of the connections still open
        self._judges: dict[str, Judge] = {}
        self._subscribers: list[Callable[[Change], None]] = []
        #: connections held at a breakpoint now, by id: what their producer said of them
        self.held: dict[str, dict[str, Any]] = {}

    # Reading -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.connections)

    def __iter__(self) -> Iterator[Connection]:
        return iter(list(self.connections.values()))

    def get(self, id: str) -> Connection | None:
        return self.connections.get(id)

    @property
    def dropped(self) -> int:
        """Events producers had to drop (their queues were full) and told us about."""
        return sum(p.dropped for p in self.producers.values())

    def violation_counts(self) -> dict[str, int]:
        """Connections held that broke a protocol rule, by their worst severity."""
        counts = {"error": 0, "warning": 0, "notice": 0}
        for conn in self.connections.values():
            violations = conn.violations
            if violations:
                severities = {v.severity for v in violations}
                worst = next(s for s in ("error", "warning", "notice") if s in severities)
                counts[worst] += 1
        return counts

    def session(self, connections: list[Connection] | None = None) -> Session:
        """A Session over all (or the given) connections, for exports."""
        chosen = list(self.connections.values()) if connections is None else connections
        return Session(chosen, {t: p.info for t, p in self.producers.items()}, self.dropped, time.time())

    # Subscribing -------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[Change], None]) -> Callable[[], None]:
        """Call ``callback`` after every change; returns a function that unsubscribes."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def _notify(self, change: Change) -> None:
        for callback in list(self._subscribers):
            callback(change)

    # Feeding -----------------------------------------------------------------------------

    def attach(self, info: ProducerInfo, controllable: bool = False) -> ProducerState:
        """A producer said hello (again, after a reconnect: then it is the same producer)."""
        state = self.producers.get(info.tag)
        if state is None:
            state = self.producers[info.tag] = ProducerState(info)
        else:
            state.info = info
            state.connected = True
        state.controllable = controllable
        state.last_seen = time.time()
        self._notify(Change("producer", producer=info.tag))
        return state

    def detach(self, tag: str) -> None:
        """A producer went away: its connections still open are marked cut off."""
        state = self.producers.get(tag)
        if state is None:
            return
        state.connected = False
        state.control = None
        for id in [id for id, held in self.held.items() if held.get("producer") == tag]:
            self._release(id)
        for conn in list(self.connections.values()):
            if conn.producer == tag and conn.outcome == "open":
                conn.outcome = "cut off"
                self._judges.pop(conn.id, None)  # it will not end: nothing more to judge
                self._notify(Change("close", conn))
        self._notify(Change("producer", producer=tag))

    def report_dropped(self, tag: str, count: int) -> None:
        """The producer ``tag`` says it has dropped ``count`` events in all so far."""
        state = self.producers.get(tag)
        if state is not None and count > state.dropped:
            state.dropped = count
            self._notify(Change("producer", producer=tag))

    def report_control(self, tag: str, report: Mapping[str, Any]) -> None:
        """What a controllable producer said: a connection held or released, its state."""
        state = self.producers.get(tag)
        kind = report.get("kind")
        if kind == "held" and isinstance(report.get("held"), Mapping):
            held = dict(report["held"])
            held["producer"] = tag
            self.held[str(held.get("id"))] = held
            self._notify(Change("held", self.connections.get(str(held.get("id"))), tag))
        elif kind == "released":
            self._release(str(report.get("id")))
        elif state is not None and kind in ("state", "error"):
            if kind == "state":
                state.control = dict(report)
            else:
                state.control = {**(state.control or {}), "error": str(report.get("error", ""))}
            self._notify(Change("producer", producer=tag))

    def _release(self, id: str) -> None:
        held = self.held.pop(id, None)
        if held is not None:
            self._notify(Change("held", self.connections.get(id), held.get("producer")))

    def open(self, doc: Mapping[str, Any]) -> Connection:
        """A connection began (``doc`` is a connection document, maybe with no events yet).

        A connection already known (sent again in a producer's history after a reconnect)
        is replaced by the newer, fuller document.
        """
        return self.add(Connection.from_document(doc))

    def add(self, conn: Connection, messages: list[Any] | None = None) -> Connection:
        """A connection began (maybe already with events, maybe ended): the same as :meth:`open`,
        for one built from the wire's values and not judged yet. ``messages``, when given, are
        its events' messages decoded already (the checker reads them; otherwise it decodes them)."""
        judge = Judge(conn)
        judge.grow(conn, messages)
        if conn.outcome == "open":
            self._judges[conn.id] = judge
        else:
            self._judges.pop(conn.id, None)
            judge.end(conn)
        old = self.connections.pop(conn.id, None)
        known = 0
        if old is not None:
            self.used -= self._sizes.pop(conn.id, 0)
            known = len(old.events)
        self.connections[conn.id] = conn
        size = _CONNECTION_OVERHEAD + sum(_EVENT_OVERHEAD + e.payload_size for e in conn.events)
        self._sizes[conn.id] = size
        self.used += size
        added = max(len(conn.events) - known, 0)
        self.events_total += added
        state = self.producers.get(conn.producer)
        if state is not None:
            if old is None:
                state.connections += 1
            state.events += added
        self._notify(Change("open", conn))
        if conn.outcome != "open":
            # A connection that arrives already finished (short ones, or history): its end too.
            self._notify(Change("close", conn))
        self._trim()
        return conn

    def event(self, id: str, doc: Mapping[str, Any], index: int | None = None) -> Connection | None:
        """An event of connection ``id``; ignored (None) when the connection is unknown.

        ``index`` is the event's place in its connection (from 0): one the store already has
        (sent again after a producer reconnected) is ignored too.
        """
        return self.events(id, [Event.from_document(doc)], index)

    def events(
        self,
        id: str,
        events: list[Event],
        index: int | None = None,
        messages: list[Any] | None = None,
    ) -> Connection | None:
        """Events of connection ``id``, the first of them its ``index``-th (from 0); those the
        store already has (sent again after a producer reconnected) are ignored, and so are
        events of a connection it does not know (None). ``messages``, when given, are the
        events' messages already decoded (the checker reads them; otherwise it decodes them)."""
        conn = self.connections.get(id)
        if conn is None:
            return None
        if index is not None:
            known = len(conn.events)
            if index + len(events) <= known:
                return None
            if index < known:
                events = events[known - index :]
                if messages is not None:
                    messages = messages[known - index :]
        grown = 0
        for event in events:
            conn.add(event)
            grown += _EVENT_OVERHEAD + event.payload_size
        judge = self._judges.get(id)
        if judge is not None:
            judge.grow(conn, messages)
        self._sizes[id] = self._sizes.get(id, 0) + grown
        self.used += grown
        self.events_total += len(events)
        state = self.producers.get(conn.producer)
        if state is not None:
            state.events += len(events)
        self._notify(Change("event", conn))
        if self.used > self.max_bytes:
            self._trim()
        return conn

    def close(self, id: str, doc: Mapping[str, Any]) -> Connection | None:
        """Connection ``id`` ended; ``doc`` carries outcome, duration, error and handler."""
        conn = self.connections.get(id)
        if conn is None:
            return None
        conn.finish(doc)
        if conn.outcome != "open":
            judge = self._judges.pop(id, None)
            if judge is not None:
                judge.end(conn)
        self._notify(Change("close", conn))
        return conn

    def add_session(self, session: Session) -> None:
        """Load a saved session into the store (``asgispy open``)."""
        for info in session.producers.values():
            state = self.attach(info)
            state.connected = False
            state.dropped = max(state.dropped, session.dropped if len(session.producers) == 1 else 0)
        for conn in session.connections:
            self.open(conn.document())

    def clear(self) -> None:
        self.connections.clear()
        self._sizes.clear()
        self._judges.clear()
        self.used = 0
        self._notify(Change("clear"))

    def _trim(self) -> None:
        if len(self.connections) <= self.max_connections and self.used <= self.max_bytes:
            return
        doomed = []
        count, used = len(self.connections), self.used
        for id, conn in self.connections.items():
            if count <= self.max_connections and used <= self.max_bytes:
                break
            # Open connections are spared, unless so many are open that sparing them breaks the bound.
            if conn.outcome != "open" or count > 2 * self.max_connections:
                doomed.append(id)
                count -= 1
                used -= self._sizes.get(id, 0)
        for id in doomed:
            conn = self.connections.pop(id)
            self._sizes.pop(id, None)
            self._judges.pop(id, None)
            self.evicted += 1
            self._notify(Change("evict", conn))
        self.used = used
