"""What the app did inside a connection, in its event tree: each outgoing call, log record and SQL
statement placed at its time among the ASGI messages, and the work it repeated.

An outgoing call reads like a connection of its own (its request and response, headers one per
line, bodies shown as the connection's are); a log record opens on its traceback; a query on
its whole statement. Entries arrive with the connection's end, so they are placed once, then.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.widgets.tree import TreeNode

from asgispy.analysis.repeats import repeats
from asgispy.exports.line import format_duration
from asgispy.model.connection import Connection
from asgispy.model.event import Event
from asgispy.model.inside import Inside, LogRecord, OutgoingCall, Query
from asgispy.tui.labels import traceback_lines
from asgispy.tui.preview import body_kind, body_lines, body_title

__all__ = ["add_repeats", "inside_label", "place_inside"]

_LEVEL_STYLES = {
    "DEBUG": "dim",
    "INFO": "cyan",
    "WARNING": "bold yellow",
    "ERROR": "bold red",
    "CRITICAL": "bold red",
}


def _status_style(status: int | None) -> str:
    if status is None:
        return "bold red"
    return "bold red" if status >= 500 else "yellow" if status >= 400 else "green"


def _one_line(text: str, width: int = 90) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def inside_label(item: Inside) -> Text:
    """One line, in the messages' columns: a mark, what it was, its time, its gist."""
    label = Text()
    if isinstance(item, OutgoingCall):
        label.append("→ call ", "bold blue")
        label.append(f"{item.method} ".ljust(8), "bold")
    elif isinstance(item, LogRecord):
        label.append("✎ log  ", "bold")
        label.append(item.level.ljust(8), _LEVEL_STYLES.get(item.level, "bold"))
    elif isinstance(item, Query):
        label.append("⛁ sql  ", "bold magenta")
        label.append("".ljust(8))
    label.append(f"+{format_duration(item.t)}".rjust(16), "dim")
    label.append("  ")
    if isinstance(item, OutgoingCall):
        label.append(_one_line(item.url, 70))
        label.append(" ")
        label.append(str(item.status) if item.status is not None else "failed", _status_style(item.status))
        if item.duration is not None:
            label.append(f"  {format_duration(item.duration)}", "bold" if item.duration >= 0.1 else "")
        if item.error:
            label.append(f"  {_one_line(item.error, 60)}", "red")
        label.append(f"  ({item.library})", "dim")
    elif isinstance(item, LogRecord):
        label.append(f"{item.logger}: ", "dim")
        label.append(_one_line(item.message), _LEVEL_STYLES.get(item.level, ""))
    elif isinstance(item, Query):
        if item.duration is not None:
            label.append(f"{format_duration(item.duration)}  ", "dim")
        label.append(_one_line(item.statement, 80))
        if item.rows is not None:
            label.append(f"  ({item.rows} row{'' if item.rows == 1 else 's'})", "dim")
        if item.error:
            label.append(f"  {_one_line(item.error, 60)}", "red")
    if item.after_response:
        label.append("  (after response)", "italic dim")
    return label


def _headers(node: TreeNode[Any], title: str, headers: Sequence[tuple[str, str]]) -> None:
    group = node.add(Text.assemble((title, "bold"), (f"  {len(headers)}", "dim")), expand=False)
    for name, value in headers:
        group.add_leaf(Text.assemble((name, "bold blue"), ": ", value))


def _body(
    node: TreeNode[Any], title: str, body: bytes, headers: Sequence[tuple[str, str]], size: int | None
) -> None:
    if not body and not size:
        return
    ctype = next((v for k, v in headers if k.lower() == "content-type"), "")
    kind = body_kind(body, ctype)
    shown = node.add(
        body_title(title, kind, len(body), size if size and size > len(body) else None), expand=False
    )
    for line in body_lines(body, ctype, kind):
        shown.add_leaf(line)


def _details(node: TreeNode[Any], item: Inside) -> None:
    if isinstance(item, OutgoingCall):
        request = node.add(Text.assemble(("request ", "bold"), f"{item.method} {item.url}"), expand=True)
        _headers(request, "headers", item.request_headers)
        _body(request, "body", item.request_body, item.request_headers, item.request_size)
        if item.status is not None:
            response = node.add(
                Text.assemble(("response ", "bold"), (str(item.status), _status_style(item.status))),
                expand=True,
            )
            _headers(response, "headers", item.response_headers)
            _body(response, "body", item.response_body, item.response_headers, item.response_size)
        if item.error:
            node.add_leaf(Text.assemble(("error ", "bold red"), (item.error, "red")))
    elif isinstance(item, LogRecord):
        node.add_leaf(Text(item.message))
        if item.where:
            node.add_leaf(Text.assemble(("where ", "bold blue"), item.where))
        if item.exception:
            trace = node.add(Text("exception", style="bold red"), expand=True)
            for line in traceback_lines(item.exception):
                trace.add_leaf(line)
    elif isinstance(item, Query):
        for text in item.statement.splitlines() or [""]:
            node.add_leaf(Text(text, style="magenta"))
        for name, value in (("database", item.database), ("rows", item.rows), ("many", item.many or None)):
            if value not in (None, ""):
                node.add_leaf(Text.assemble((name, "bold blue"), f" = {value}"))
        if item.parameters is not None:
            node.add_leaf(Text.assemble(("parameters", "bold blue"), f" = {item.parameters!r}"[:500]))
        if item.error:
            node.add_leaf(Text.assemble(("error ", "bold red"), (item.error, "red")))


def place_inside(
    messages: TreeNode[Any], shown: Sequence[TreeNode[Any]], events: Sequence[Event], conn: Connection
) -> int:
    """Put each inside entry of ``conn`` among the message nodes ``shown`` (one per event, in
    order) before the first message that came after it; returns how many were placed."""
    items = conn.inside
    position = 0
    for item in items:
        while position < len(events) and position < len(shown) and events[position].t <= item.t:
            position += 1
        before = shown[position] if position < len(shown) else None
        node = (
            messages.add(inside_label(item), before=before, expand=False)
            if before
            else messages.add(inside_label(item), expand=False)
        )
        _details(node, item)
    return len(items)


def add_repeats(root: TreeNode[Any], conn: Connection, before: TreeNode[Any] | None) -> None:
    """A node listing the work the connection repeated (an N+1, one call per item), if any."""
    found = repeats(conn)
    if not found:
        return
    node = root.add(
        Text.assemble(("repeated work", "bold yellow"), (f"  {len(found)}", "dim")),
        before=before,
        expand=True,
    )
    for repeat in found:
        mark = "⛁ " if repeat.kind == "sql" else "→ "
        node.add_leaf(Text.assemble((mark, "bold"), (repeat.words(), "yellow")))
