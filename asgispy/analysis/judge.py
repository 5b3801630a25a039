"""The analyses every connection gets where connections are built from records: the ASGI protocol
checker as its events arrive, and, once it has ended, what each of its middleware layers did.

The store runs a :class:`Judge` per open connection, fed as the wire brings events; a session
loaded whole goes through :func:`judge`. Both write their findings onto the model
(``conn.violations``, ``layer.changes``), so that every view reads one answer, and the model
itself knows nothing of the rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from asgispy.analysis.checker import Checker
from asgispy.analysis.layerdiff import Side, layer_changes
from asgispy.model.connection import Connection
from asgispy.model.layers import Layer

__all__ = ["Judge", "diff_layers", "judge"]


class Judge:
    """Follows one connection: checks each event once, in order, and the whole at its end."""

    __slots__ = ("_checked", "_checker")

    def __init__(self, conn: Connection) -> None:
        self._checker = Checker(conn.type, conn.method)
        self._checked = 0

    def grow(self, conn: Connection, messages: Sequence[Any] | None = None) -> None:
        """Check the events ``conn`` gained since the last call. ``messages``, when given, are
        those events' messages decoded already (the wire's reader has them), sparing a decode."""
        events = conn.events
        start = self._checked
        feed = self._checker.feed
        for index in range(start, len(events)):
            event = events[index]
            message = messages[index - start] if messages is not None else event.peek()
            found = feed(index, event.direction, message, event.cut)
            if found:
                conn.violations.extend(found)
        self._checked = len(events)

    def end(self, conn: Connection) -> None:
        """The connection ended: the rules about a whole connection, then the layers' changes."""
        if conn.outcome == "open":
            return
        if not conn.events_dropped:  # with messages missing, an unfinished response may be ours
            conn.violations.extend(self._checker.finish(conn.outcome))
        diff_layers(conn)


def judge(conn: Connection, messages: Sequence[Any] | None = None) -> Connection:
    """Check a connection built whole (loaded from a file); returns it."""
    judging = Judge(conn)
    judging.grow(conn, messages)
    judging.end(conn)
    return conn


def _side(layer: Layer) -> Side:
    return Side(
        layer.scope,
        [(e.direction, e.t, e.message, e.wait) for e in layer.events],
        layer.entered,
        layer.exited,
        layer.error,
    )


def diff_layers(conn: Connection) -> None:
    """Give each layer ``conn`` crossed what it did, from its two sides (layers mode only)."""
    layers = conn.layers
    for i, layer in enumerate(layers):
        if not layer.reached:
            continue
        # The next layer, if any: not reached means this one answered without calling inward.
        inner: Side | None = None
        if i + 1 < len(layers):
            inner = _side(layers[i + 1]) if layers[i + 1].reached else Side(None, [])
        try:
            layer.changes = layer_changes(_side(layer), inner)
        except Exception:  # a diff that fails must not lose the connection
            layer.changes = None
