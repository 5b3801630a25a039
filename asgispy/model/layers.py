"""The middleware layers one connection crossed (layers mode), rebuilt from a session file.

A session keeps each layer's messages as differences from the layer above
(:mod:`asgispy.capture.layers`); here they are made whole again. What each layer did is worked
out from them by :mod:`asgispy.analysis.layerdiff`, which fills ``changes``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asgispy.codec import jsonform
from asgispy.model.event import Event

if TYPE_CHECKING:
    from asgispy.analysis.layerchanges import Changes
    from asgispy.model.connection import Connection

__all__ = ["Layer", "layers_from_document"]


class Layer:
    """One layer of the middleware stack, as one connection crossed it (layers mode).

    ``events`` are the messages as this layer's outer side passed them (what the layer above
    gave it and took from it), rebuilt in full from the differences the file keeps;
    ``changes`` what this layer did to them, from its two sides (filled by
    :mod:`asgispy.analysis.layerdiff` where connections are built; None until then, or when
    that could not be worked out).
    """

    __slots__ = (
        "changes",
        "depth",
        "entered",
        "error",
        "events",
        "exited",
        "name",
        "options",
        "reached",
        "scope",
    )

    def __init__(
        self,
        depth: int,
        name: str,
        options: dict[str, str] | None,
        reached: bool,
        scope: dict[str, Any],
        events: list[Event],
        entered: float | None,
        exited: float | None,
        error: str | None,
    ) -> None:
        self.depth = depth
        self.name = name
        self.options = options
        self.reached = reached
        self.scope = scope
        self.events = events
        self.entered = entered
        self.exited = exited
        self.error = error
        self.changes: Changes | None = None

    def __repr__(self) -> str:
        return f"<Layer {self.depth} {self.name}>"


def layers_from_document(conn: Connection, docs: Any) -> list[Layer]:
    """The layers of ``conn`` from their session-file form (see docs/format.md, "Layers")."""
    if not isinstance(docs, list):
        return []
    layers: list[Layer] = []
    above_events = conn.events
    above_scope = conn.scope
    for depth, doc in enumerate(docs):
        if not isinstance(doc, dict):
            continue
        name = str(doc.get("name", "?"))
        options = doc.get("options") if isinstance(doc.get("options"), dict) else None
        if depth == 0:
            error = f"{conn.error.type}: {conn.error.message}" if conn.error else None
            layers.append(
                Layer(0, name, options, True, conn.scope, list(conn.events), 0.0, conn.duration, error)
            )
            continue
        if not doc.get("reached"):
            layers.append(Layer(depth, name, options, False, {}, [], None, None, None))
            continue
        raw_scope = doc.get("scope")
        scope_doc: dict[str, Any] = raw_scope if isinstance(raw_scope, dict) else {}
        scope = dict(above_scope)
        try:
            changed = jsonform.decode(scope_doc.get("set", {}))
        except ValueError:
            changed = {}
        if isinstance(changed, dict):
            scope.update(changed)
        for key in scope_doc.get("removed", ()) or ():
            scope.pop(key, None)
        events: list[Event] = []
        for item in doc.get("events", ()) or ():
            if not isinstance(item, dict):
                continue
            direction = item.get("direction")
            if direction not in ("receive", "send"):
                continue
            t = float(item.get("t", 0.0) or 0.0)
            wait = item.get("wait")
            wait = float(wait) if isinstance(wait, (int, float)) and not isinstance(wait, bool) else None
            same = item.get("same")
            if isinstance(same, int) and 0 <= same < len(above_events):
                model = above_events[same]
                event = Event.from_message(direction, t, model.message, model.cut, model._raw, wait)
            else:
                event = Event(direction, t, item.get("message"), item.get("cut"), wait)
            events.append(event)
        entered, exited = doc.get("entered"), doc.get("exited")
        layers.append(
            Layer(
                depth,
                name,
                options,
                True,
                scope,
                events,
                float(entered) if isinstance(entered, (int, float)) else None,
                float(exited) if isinstance(exited, (int, float)) else None,
                str(doc["error"]) if doc.get("error") else None,
            )
        )
        above_events, above_scope = events, scope
    return layers
