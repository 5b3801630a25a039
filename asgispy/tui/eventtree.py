"""The event tree of one connection: its scope, then every message in order, growing live.

Each message is one line (direction, type, time since start, a summary); its fields are
built only when the user expands it, so a WebSocket with thousands of frames stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from asgispy.analysis.checker import Violation
from asgispy.analysis.rules import RULES
from asgispy.exports.line import format_duration, summary_line
from asgispy.model.connection import Connection
from asgispy.model.event import Event
from asgispy.tui.insidenodes import add_repeats, place_inside
from asgispy.tui.labels import (
    RECEIVE_LABEL,
    SEND_LABEL,
    SEVERITY_MARKS,
    SEVERITY_STYLES,
    content_type,
    event_summary,
    header_line,
    layer_label,
    scope_label,
    traceback_lines,
    violation_text,
    wait_text,
)
from asgispy.tui.preview import body_kind, body_lines, body_title, value_text
from asgispy.tui.streamview import StreamFollower, stream_views

__all__ = ["EventTree"]

_PAYLOAD = ("body", "bytes", "text")


class _Lazy:
    """Node data: a node whose children are built on first expansion."""

    __slots__ = ("built", "kind", "value")

    def __init__(self, kind: str, value: Any) -> None:
        self.kind = kind
        self.value = value
        self.built = False


class EventTree(Tree[Any]):
    """The selected connection as a tree; call :meth:`show` to switch, :meth:`grow` to update."""

    BINDINGS = [
        Binding("escape", "back", "Back to list", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("no connection selected", id=id)
        self.show_root = True
        self.guide_depth = 3
        self.connection: Connection | None = None
        self._events_shown = 0
        self._ended = False
        self._events_node: TreeNode[Any] | None = None
        self._problems_node: TreeNode[Any] | None = None
        self._violations_shown = 0
        self._streams: dict[str, tuple[StreamFollower, TreeNode[Any]]] = {}
        #: one node per message, by event index (what the app did inside goes between them)
        self._message_nodes: list[TreeNode[Any]] = []

    # Building -------------------------------------------------------------------------------

    def show(self, conn: Connection | None) -> None:
        """Show ``conn`` from the start (another connection was selected)."""
        # Detach the old nodes from their parents first: parent and child refer to each other,
        # and the heap is frozen now and then (see Dashboard), so cycles would outlive the tree.
        self.root.remove_children()
        self.clear()
        self.connection = conn
        self._events_shown = 0
        self._ended = False
        self._events_node = None
        self._problems_node = None
        self._violations_shown = 0
        self._streams = {}
        self._message_nodes = []
        if conn is None:
            self.root.set_label(Text("no connection selected", style="dim"))
            return
        self.root.set_label(self._title(conn))
        self.root.add(scope_label(conn), _Lazy("scope", conn), expand=False)
        self._events_node = self.root.add(Text("messages", style="bold"), expand=True)
        self.grow(conn)
        self.root.expand()

    def grow(self, conn: Connection) -> None:
        """Add what happened to ``conn`` since it was last drawn."""
        if self.connection is not conn or self._events_node is None:
            self.show(conn)
            return
        self.root.set_label(self._title(conn))
        events = conn.events
        node = self._events_node
        at_fault = self._new_violations(conn)
        start = self._events_shown
        for index in range(start, len(events)):
            event = events[index]
            label = self._event_label(event, at_fault.get(index, ()))
            doc = event.doc
            has_fields = (type(doc) is dict and len(doc) > 1) or event.wait is not None or index in at_fault
            shown = node.add(label, _Lazy("event", (conn, event, index)), allow_expand=has_fields)
            self._message_nodes.append(shown)
        # Violations found later (a response never finished) mark a message already drawn.
        for index in at_fault:
            if index < start and index < len(self._message_nodes):
                self._message_nodes[index].set_label(self._event_label(events[index], self._at(conn, index)))
        self._events_shown = len(events)
        node.set_label(Text.assemble(("messages", "bold"), f"  {len(events)}", *self._dropped(conn)))
        self._grow_streams(conn)
        if conn.outcome != "open" and not self._ended:
            self._ended = True
            if conn.inside:
                placed = place_inside(node, self._message_nodes, events, conn)
                node.set_label(
                    Text.assemble(
                        ("messages", "bold"),
                        f"  {len(events)}",
                        (f" · {placed} inside", "bold blue"),
                        *self._dropped(conn),
                    )
                )
                add_repeats(self.root, conn, before=node)
            self._add_ending(conn)

    def _at(self, conn: Connection, index: int) -> list[Violation]:
        return [v for v in conn.violations if v.event == index]

    def _new_violations(self, conn: Connection) -> dict[int, list[Violation]]:
        """Add violations found since the last look to the problems node; by event index."""
        new = conn.violations[self._violations_shown :]
        if not new:
            return {}
        self._violations_shown = len(conn.violations)
        problems = self._problems_node
        if problems is None:
            assert self._events_node is not None
            problems = self._problems_node = self.root.add(
                Text("problems", style="bold red"), before=self._events_node, expand=True
            )
        for violation in new:
            line = violation_text(violation)
            if violation.event is not None:
                line.append(f"  (message {violation.event + 1})", style="dim")
            item = problems.add(line, expand=False)
            rule = RULES.get(violation.rule)
            if rule is not None:
                item.add_leaf(Text(rule.title, style="italic"))
        counts = {s: sum(1 for v in conn.violations if v.severity == s) for s in SEVERITY_STYLES}
        words = [f"{n} {s}{'s' if n != 1 else ''}" for s, n in counts.items() if n]
        worst = next((s for s in SEVERITY_STYLES if counts[s]), "notice")
        problems.set_label(
            Text.assemble(
                ("problems", SEVERITY_STYLES[worst]), "  " + ", ".join(words), ("  (docs/rules.md)", "dim")
            )
        )
        at_fault: dict[int, list[Violation]] = {}
        for violation in new:
            if violation.event is not None:
                at_fault.setdefault(violation.event, []).append(violation)
        return at_fault

    def _grow_streams(self, conn: Connection) -> None:
        """The stream views (server-sent events, JSON lines, a conversation, upload chunks)."""
        for kind in stream_views(conn):
            entry = self._streams.get(kind)
            if entry is None:
                follower = StreamFollower(conn, kind)
                node = self.root.add(follower.title, expand=True)
                entry = self._streams[kind] = (follower, node)
            follower, node = entry
            for line in follower.update():
                node.add_leaf(line)
            node.set_label(follower.title)

    def _dropped(self, conn: Connection) -> list[tuple[str, str]]:
        if not conn.events_dropped:
            return []
        return [(f"  ({conn.events_dropped} more not kept)", "bold yellow")]

    def _title(self, conn: Connection) -> Text:
        title = Text(summary_line(conn), style="bold")
        title.append(f"  {conn.id}", style="dim")
        return title

    def _event_label(self, event: Event, violations: Sequence[Violation] = ()) -> Text:
        label = Text.assemble(
            RECEIVE_LABEL if event.direction == "receive" else SEND_LABEL,
            " ",
            (event.type.ljust(22), "bold"),
            (f"+{format_duration(event.t)}".rjust(10), "dim"),
            "  ",
        )
        label.append_text(event_summary(event))
        label.append_text(wait_text(event))
        for violation in violations:
            style = SEVERITY_STYLES.get(violation.severity, "bold")
            label.append(f"  {SEVERITY_MARKS.get(violation.severity, '!')} {violation.rule}", style=style)
        return label

    def _add_ending(self, conn: Connection) -> None:
        if conn.error is not None:
            error = self.root.add(
                Text.assemble(("✖ raised ", "bold red"), (f"{conn.error.type}: {conn.error.message}", "red")),
                expand=True,
            )
            for line in traceback_lines(conn.error.traceback):
                error.add_leaf(line)
        elif conn.outcome in ("cancelled", "cut off"):
            self.root.add_leaf(Text(f"✂ {conn.outcome}", style="bold magenta"))
        if conn.type == "http":
            self._add_bodies(conn)
        if conn.layers:
            self._add_layers(conn)
        if conn.handler:
            handler = self.root.add(
                Text.assemble(("handler", "bold"), "  ", self._handler_gist(conn.handler))
            )
            for key, value in conn.handler.items():
                handler.add_leaf(Text.assemble((key, "bold blue"), " = ", value_text(value)))
        if conn.notes:
            notes = self.root.add(Text("notes", style="bold yellow"), expand=True)
            for note in conn.notes:
                notes.add_leaf(Text(note, style="yellow"))
        if conn.interventions:
            self._add_interventions(conn)

    def _add_interventions(self, conn: Connection) -> None:
        """What asgispy's rules, addons and breakpoints did, at its time; a hook's traceback."""
        changed = self.root.add(
            Text.assemble(("✎ changed by asgispy", "bold magenta"), (f"  {len(conn.interventions)}", "dim")),
            expand=True,
        )
        for change in conn.interventions:
            label = Text.assemble(
                (f"{float(change.get('t', 0.0)) * 1000:8.1f} ms  ", "dim"),
                (str(change.get("by", "")), "bold magenta"),
                "  ",
                str(change.get("what", "")),
            )
            trace = change.get("traceback")
            if trace:
                node = changed.add(label)
                for line in traceback_lines(str(trace)):
                    node.add_leaf(line)
            else:
                changed.add_leaf(label)

    def _add_layers(self, conn: Connection) -> None:
        """The middleware stack, outermost first: what each layer did, in words; the layers
        that changed nothing on one line each. Open a layer for the messages as it saw them."""
        layers = conn.layers
        changed = sum(1 for layer in layers if layer.changes is not None and layer.changes.changed)
        node = self.root.add(
            Text.assemble(
                ("layers", "bold"),
                f"  {len(layers)}, {changed} changed something",
                ("  outermost first", "dim"),
            ),
            expand=True,
        )
        for layer in layers:
            node.add(layer_label(layer), _Lazy("layer", (conn, layer)), allow_expand=layer.reached)

    def _handler_gist(self, handler: Mapping[str, Any]) -> str:
        parts = [str(handler.get("route") or "")]
        if handler.get("endpoint"):
            parts.append(f"→ {handler['endpoint']}")
        return " ".join(p for p in parts if p)

    def _add_bodies(self, conn: Connection) -> None:
        request = [e for e in conn.events if e.type == "http.request"]
        response = [e for e in conn.events if e.type == "http.response.body"]
        for name, events, headers in (
            ("request body", request, conn.request_headers),
            ("response body", response, conn.response_headers),
        ):
            size = sum(e.field_size("body") for e in events)
            if not size:
                continue
            kept = sum(len(e.message.get("body", b"") or b"") for e in events)
            cut = any(e.cut for e in events)
            body = b"".join(e.message.get("body", b"") or b"" for e in events)
            ctype = content_type(headers)
            kind = body_kind(body, ctype)
            title = body_title(name, kind, kept, size if cut else None)
            node = self.root.add(title, _Lazy("body", (body, ctype, kind)), expand=False)
            self._populate(node)
            node.expand()

    # Lazy children ------------------------------------------------------------------------

    def on_tree_node_expanded(self, event: Tree.NodeExpanded[Any]) -> None:
        self._populate(event.node)

    def _populate(self, node: TreeNode[Any]) -> None:
        data = node.data
        if not isinstance(data, _Lazy) or data.built:
            return
        data.built = True
        if data.kind == "scope":
            self._fields(node, data.value.scope)
        elif data.kind == "event":
            conn, event, index = data.value
            for violation in self._at(conn, index):
                problem = node.add(violation_text(violation), expand=True)
                rule = RULES.get(violation.rule)
                if rule is not None:
                    problem.add_leaf(Text(rule.title, style="italic"))
            if event.wait is not None:
                inside = "send()" if event.direction == "send" else "receive()"
                node.add_leaf(
                    Text.assemble(("time in " + inside, "bold blue"), " = ", format_duration(event.wait))
                )
            self._event_fields(node, conn, event)
        elif data.kind == "body":
            body, ctype, kind = data.value
            for line in body_lines(body, ctype, kind):
                node.add_leaf(line)
        elif data.kind == "value":
            self._fields(node, data.value)
        elif data.kind == "layer":
            conn, layer = data.value
            if layer.changes is not None:
                for line in layer.changes.words():
                    node.add_leaf(Text(line, style="yellow"))
            if layer.options:
                options = ", ".join(f"{k}={v}" for k, v in layer.options.items())
                node.add_leaf(Text.assemble(("options ", "bold blue"), options))
            seen = node.add(Text(f"messages as {layer.name} saw them  {len(layer.events)}", style="bold"))
            for index, event in enumerate(layer.events):
                doc = event.doc
                seen.add(
                    self._event_label(event),
                    _Lazy("event", (conn, event, -1 - index)),
                    allow_expand=type(doc) is dict and len(doc) > 1,
                )

    def _fields(self, node: TreeNode[Any], value: Any) -> None:
        items = list(value.items()) if isinstance(value, Mapping) else list(enumerate(value))
        for key, item in items:
            name = Text(str(key), style="bold blue")
            if key == "headers" and isinstance(item, (list, tuple)) and item:
                headers = node.add(Text.assemble(name, f"  {len(item)}"), expand=True)
                for pair in item:
                    if isinstance(pair, (list, tuple)) and len(pair) == 2 and isinstance(pair[0], bytes):
                        headers.add_leaf(header_line(pair[0], pair[1] if isinstance(pair[1], bytes) else b""))
                    else:
                        headers.add_leaf(value_text(pair))
            elif isinstance(item, (Mapping, list, tuple)) and item:
                label = Text.assemble(name, ("  " + type(item).__name__ + f" ({len(item)})", "dim"))
                node.add(label, _Lazy("value", item))
            else:
                node.add_leaf(Text.assemble(name, " = ", value_text(item)))

    def _event_fields(self, node: TreeNode[Any], conn: Connection, event: Event) -> None:
        message = event.message if isinstance(event.message, dict) else {"message": event.message}
        payload = {k: v for k, v in message.items() if k in _PAYLOAD and v is not None}
        self._fields(node, {k: v for k, v in message.items() if k not in payload})
        ctype = content_type(conn.response_headers if event.direction == "send" else conn.request_headers)
        if conn.type == "websocket":
            ctype = ""
        for name, value in payload.items():
            kind = body_kind(value, ctype)
            cut = event.cut.get(name) if event.cut else None
            title = body_title(name, kind, len(value), cut)
            body = node.add(title, _Lazy("body", (value, ctype, kind)), expand=True)
            self._populate(body)

    def expand_everything(self) -> None:
        """Build every lazy node, then open them all (``a``)."""
        todo = [self.root]
        while todo:
            node = todo.pop()
            self._populate(node)
            todo.extend(node.children)
        self.root.expand_all()

    # Actions --------------------------------------------------------------------------------

    def action_back(self) -> None:
        self.screen.focus_next("ConnectionList")
