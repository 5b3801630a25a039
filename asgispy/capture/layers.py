"""Layers mode: what crossed every depth of an app's middleware stack, not only the top.

An ASGI app is a chain: each middleware holds the next app in its ``app`` attribute, down to
the endpoint (for Starlette and FastAPI, the router). With ``Spy(app, layers=True)`` a *tap* is
placed once between each pair of layers: an ASGI app that records the scope and the messages
one layer passes to the next, then passes them on. Layer 0's outer side is Spy's own record;
the tap at depth ``i`` records layer ``i``'s outer side, which is layer ``i - 1``'s inner side.
What each layer did is worked out from two adjacent sides where records are read, never here.

The taps pass the very scope and message objects on; only the ``receive`` and ``send``
callables a layer hands inward are wrapped (to see the messages), as any middleware's are.
"""

from __future__ import annotations

import contextvars
import threading
from dataclasses import dataclass, field
from time import perf_counter
from typing import TYPE_CHECKING, Any

from asgispy.capture.snapshot import snapshot_message, snapshot_scope
from asgispy.codec.jsonform import encode

if TYPE_CHECKING:
    from asgispy.capture.record import ConnectionRecord
    from asgispy.codec.redact import Redactor
    from asgispy.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["LayerSide", "Stack", "Tap", "current_record", "layer_name_of", "layers_document"]

#: The record of the connection being served, for the taps below Spy (set only in layers mode).
current_record: contextvars.ContextVar[ConnectionRecord | None] = contextvars.ContextVar(
    "asgispy_record", default=None
)

#: Middleware stacks deeper than this are tapped this far (a cycle or a runaway chain).
MAX_DEPTH = 64


@dataclass
class LayerSide:
    """What crossed the outer side of one layer, for one connection (times since it began)."""

    scope: dict[str, Any]
    entered: float
    events: list[list[Any]] = field(default_factory=list)
    exited: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class LayerInfo:
    """A layer of the stack: its class name, and the options the app declared it with."""

    name: str
    options: dict[str, str] | None


class Tap:
    """Stands where one layer calls the next: records what crosses, and passes it all on."""

    def __init__(self, app: ASGIApp, depth: int, max_body: int) -> None:
        self.app = app
        self.depth = depth
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        record = current_record.get()
        sides = record.layers if record is not None else None
        if record is None or sides is None or self.depth >= len(sides) or sides[self.depth] is not None:
            # Not recorded (or entered again for the same connection, which a layer may do):
            # pass through untouched.
            await self.app(scope, receive, send)
            return
        t0 = record.t0
        max_body = self.max_body
        side = LayerSide(snapshot_scope(scope), perf_counter() - t0)
        sides[self.depth] = side
        events = side.events
        append = events.append
        limit = record.max_events

        async def tap_receive() -> Message:
            called = perf_counter()
            message = await receive()
            if len(events) < limit:
                try:
                    now = perf_counter()
                    copy, cut, _ = snapshot_message(message, max_body)
                    append(["receive", now - t0, copy, cut, now - called])
                except Exception as exc:
                    record.note(f"layer {self.depth}: could not record a received message: {exc!r}")
            return message

        async def tap_send(message: Message) -> None:
            event: list[Any] | None = None
            called = 0.0
            if len(events) < limit:
                try:
                    called = perf_counter()
                    copy, cut, _ = snapshot_message(message, max_body)
                    event = ["send", called - t0, copy, cut, None]
                    append(event)
                except Exception as exc:
                    record.note(f"layer {self.depth}: could not record a sent message: {exc!r}")
            try:
                await send(message)
            finally:
                if event is not None:
                    event[4] = perf_counter() - called

        try:
            await self.app(scope, tap_receive, tap_send)
        except BaseException as exc:
            side.error = f"{type(exc).__name__}: {exc}"[:500]
            raise
        finally:
            side.exited = perf_counter() - t0


class Stack:
    """The layers of one app, found and tapped once, at its first connection.

    ``above`` is a layer Spy itself put over the app (asgispy's interception), tapped as the
    outermost.
    """

    def __init__(self, app: ASGIApp, max_body: int, *, above: Any = None) -> None:
        self.app = app
        self.max_body = max_body
        self.above = above
        self.layers: list[LayerInfo] = []
        self._placed = False
        self._lock = threading.Lock()

    def place(self) -> list[LayerInfo]:
        """Find the chain of layers and put a tap between each pair (once; thread-safe)."""
        if self._placed:
            return self.layers
        with self._lock:
            if not self._placed:
                try:
                    chain = self._chain()
                    if self.above is not None:
                        chain.insert(0, (self.above, None))
                    self.layers = self._tap(chain[:MAX_DEPTH])
                finally:
                    self._placed = True
        return self.layers

    def _chain(self) -> list[tuple[Any, dict[str, str] | None]]:
        """The layers, outermost first, with the options the app declared them with."""
        app = self.app
        declared: list[tuple[type, dict[str, str]]] = []
        start: Any = app
        if hasattr(app, "build_middleware_stack") and hasattr(app, "middleware_stack"):
            # Starlette and FastAPI build their stack at their first call: build it now, as
            # they would, so the layers (error and exception middleware included) are there.
            if app.middleware_stack is None:
                app.middleware_stack = app.build_middleware_stack()
            start = app.middleware_stack
            for entry in getattr(app, "user_middleware", ()) or ():
                cls = getattr(entry, "cls", None)
                if isinstance(cls, type):
                    declared.append((cls, _options(entry)))
        chain: list[tuple[Any, dict[str, str] | None]] = []
        if start is not app:
            chain.append((app, None))  # the app itself: it sets scope["app"] before its stack
        node = start
        seen: set[int] = set()
        while node is not None and id(node) not in seen and len(chain) < MAX_DEPTH:
            seen.add(id(node))
            options = None
            for i, (cls, opts) in enumerate(declared):
                if type(node) is cls:
                    options = opts
                    del declared[i]
                    break
            chain.append((node, options))
            inner = getattr(node, "app", None)
            if getattr(inner, "__self__", None) is node:
                break  # a method of the layer itself (Starlette's Router.app): the bottom
            node = inner if callable(inner) else None
        return chain

    def _tap(self, chain: list[tuple[Any, dict[str, str] | None]]) -> list[LayerInfo]:
        layers = [LayerInfo(layer_name_of(node), options) for node, options in chain]
        for depth in range(1, len(chain)):
            outer: Any = chain[depth - 1][0]
            try:
                if getattr(outer, "middleware_stack", None) is chain[depth][0]:
                    outer.middleware_stack = Tap(outer.middleware_stack, depth, self.max_body)
                else:
                    outer.app = Tap(outer.app, depth, self.max_body)
            except (AttributeError, TypeError):
                # A layer that will not let its `app` be replaced: the stack is tapped down to here.
                return layers[:depth]
        return layers


def layer_name_of(node: Any) -> str:
    """A layer's name in the layers view: its own ``layer_name``, a function's name, or its class's."""
    own = getattr(type(node), "layer_name", None)
    if isinstance(own, str):
        return own  # a layer that names itself (asgispy's own interception)
    name = type(node).__name__
    if name == "function" or name == "method":
        name = getattr(node, "__name__", name)  # an endpoint function: its own name
    return name


def _options(entry: Any) -> dict[str, str]:
    """A declared middleware's options as short text (its objects are the app's own)."""
    options: dict[str, str] = {}
    kwargs = getattr(entry, "kwargs", None) or getattr(entry, "options", None) or {}
    for index, value in enumerate(getattr(entry, "args", ()) or ()):
        options[f"arg{index}"] = _short(value)
    if isinstance(kwargs, dict):
        for key, value in kwargs.items():
            options[str(key)] = _short(value)
    return options


def _short(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 80 else text[:79] + "…"


def layers_document(
    record: ConnectionRecord, infos: list[LayerInfo], redactor: Redactor | None
) -> list[dict[str, Any]] | None:
    """The layers of ``record`` as JSON-able data, outermost first (off the request path).

    Layer 0's outer side is the connection's own events, not repeated. Each deeper side keeps
    only what differs from the side above it: an event whose message equals the one at the
    same place above is written as ``{"same": index}`` with its own time and wait.
    """
    sides = record.layers
    if sides is None:
        return None
    above_events = record.events
    above_scope = record.scope
    out: list[dict[str, Any]] = []
    for depth, info in enumerate(infos):
        doc: dict[str, Any] = {"name": info.name, "options": info.options}
        if depth == 0:
            doc["reached"] = True
            out.append(doc)
            continue
        side = sides[depth] if depth < len(sides) else None
        if side is None:
            doc["reached"] = False
            out.append(doc)
            continue
        doc["reached"] = True
        doc["entered"] = side.entered
        doc["exited"] = side.exited
        doc["error"] = side.error
        doc["scope"] = _scope_changes(above_scope, side.scope, redactor)
        events = []
        for index, event in enumerate(side.events):
            direction, t, message, cut, wait = event[:5]
            item: dict[str, Any] = {"direction": direction, "t": t}
            if (
                index < len(above_events)
                and above_events[index][0] == direction
                and _equal(above_events[index][2], message)
            ):
                item["same"] = index
            else:
                item["message"] = encode(redactor.message(message) if redactor else message)
                if cut:
                    item["cut"] = cut
            if wait is not None:
                item["wait"] = wait
            events.append(item)
        doc["events"] = events
        out.append(doc)
        above_events, above_scope = side.events, side.scope
    return out


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:
        return False


def _scope_changes(above: dict[str, Any], below: dict[str, Any], redactor: Redactor | None) -> dict[str, Any]:
    """Keys the layer set or changed in the scope it passed inward (encoded), and keys it removed."""
    changed = {}
    for key, value in below.items():
        if key not in above or not _equal(above[key], value):
            changed[key] = value
    if redactor is not None and "headers" in changed:
        changed = redactor.message(changed)
    return {"set": encode(changed), "removed": [k for k in above if k not in below]}
