"""What the event tree's lines say: a message's gist, a layer's, the scope's, a violation, a
traceback, a header; plain functions of the model, apart from the tree widget that shows them.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

from asgispy.analysis.checker import Violation
from asgispy.codec.redact import REDACTED
from asgispy.exports.line import format_duration, format_size
from asgispy.model.connection import Connection
from asgispy.model.event import Event
from asgispy.model.layers import Layer
from asgispy.types import PAYLOAD_FIELDS

__all__ = [
    "NOTABLE_WAIT",
    "RECEIVE_LABEL",
    "SEND_LABEL",
    "SEVERITY_MARKS",
    "SEVERITY_STYLES",
    "content_type",
    "event_summary",
    "header_line",
    "layer_label",
    "scope_label",
    "status_style",
    "traceback_lines",
    "violation_text",
    "wait_text",
]

_PAYLOAD = PAYLOAD_FIELDS
RECEIVE_LABEL = Text("→ recv", style="bold cyan")
SEND_LABEL = Text("← send", style="bold magenta")
SEVERITY_STYLES = {"error": "bold red", "warning": "bold yellow", "notice": "dim"}
SEVERITY_MARKS = {"error": "✖", "warning": "⚠", "notice": "·"}
#: Waits shorter than this are not worth a word on the message's line.
NOTABLE_WAIT = 0.001


def wait_text(event: Event) -> Text:
    """``  blocked 812 ms`` (send) or ``  waited 2.1 s`` (receive), when long enough to matter."""
    wait = event.wait
    if wait is None or wait < NOTABLE_WAIT:
        return Text()
    if event.direction == "send":
        return Text(f"  blocked {format_duration(wait)}", style="yellow")
    return Text(f"  waited {format_duration(wait)}", style="cyan")


def violation_text(violation: Violation) -> Text:
    """``✖ http.content-length  Content-Length says 10 bytes, 14 were sent``."""
    style = SEVERITY_STYLES.get(violation.severity, "bold")
    return Text.assemble(
        (f"{SEVERITY_MARKS.get(violation.severity, '!')} {violation.rule}", style),
        "  ",
        violation.message,
    )


def event_summary(event: Event) -> Text:
    """The one-line gist of a message: status, size, more_body, close code, a text preview."""
    doc = event.doc  # parsed from the stored JSON on each read: read once
    if type(doc) is not dict:
        doc = {}
    kind = event.type
    text = Text()
    if kind.endswith("response.start"):
        status = doc.get("status")
        text.append(f"{status}", style=status_style(status))
    if kind == "websocket.accept" and doc.get("subprotocol"):
        text.append(f"subprotocol {doc['subprotocol']}")
    for name in _PAYLOAD:
        if name in doc and doc[name] is not None:
            size = event.field_size(name)
            text.append(f"{name} {format_size(size)}", style="bold")
            if event.cut and name in event.cut:
                text.append(" (cut)", style="bold yellow")
            if name == "text" and isinstance(doc[name], str):
                preview = doc[name][:48].replace("\n", "⏎")
                text.append(f"  {preview!r}" + ("…" if len(doc[name]) > 48 else ""), style="green")
    if doc.get("more_body"):
        text.append("  more_body", style="yellow")
    if "code" in doc and kind.startswith("websocket."):
        text.append(f"code {doc['code']}", style="bold")
        if doc.get("reason"):
            text.append(f"  {doc['reason']!r}")
    if kind.endswith(".failed") and doc.get("message"):
        text.append(f"{doc['message']}", style="bold red")
    return text


def layer_label(layer: Layer) -> Text:
    """``GZipMiddleware  + content-encoding: gzip · body 5.0 KiB → 1.2 KiB · 0.4 ms inside``."""
    label = Text(layer.name, style="bold" if layer.reached else "dim")
    if not layer.reached:
        label.append("  not reached", style="dim italic")
        return label
    changes = layer.changes
    words = changes.words() if changes is not None else []
    if words:
        label.append("  " + " · ".join(words), style="yellow")
    else:
        label.append("  passed through", style="dim")
    inside = changes.time_inside if changes is not None else None
    if inside is not None:
        label.append(f"  {format_duration(inside)} inside", style="dim")
    return label


def scope_label(conn: Connection) -> Text:
    """``scope  http/1.1 GET http://testserver/items · client 127.0.0.1:5000 · 5 headers``."""
    scope = conn.scope
    label = Text("scope", style="bold")
    parts = []
    if conn.type in ("http", "websocket"):
        version = scope.get("http_version")
        scheme = scope.get("scheme") or ("ws" if conn.type == "websocket" else "http")
        host = next((v.decode("latin-1") for k, v in conn.request_headers if k == b"host"), "")
        parts.append(
            " ".join(p for p in (f"{conn.type}/{version}" if version else conn.type, conn.method or "") if p)
        )
        parts.append(f"{scheme}://{host}{scope.get('root_path') or ''}{conn.target}")
        client = conn.client
        if client is not None:
            parts.append(
                f"client {client.host}:{client.port}" if client.port is not None else f"client {client.host}"
            )
        parts.append(f"{len(conn.request_headers)} headers")
    else:
        parts.append(conn.type)
        spec = scope.get("asgi")
        if isinstance(spec, dict) and spec.get("version"):
            parts.append(f"asgi {spec['version']}")
    label.append("  " + " · ".join(parts), style="dim")
    return label


def traceback_lines(traceback: str) -> list[Text]:
    """The traceback, with the app's own frames standing out from the server's and libraries'."""
    lines = []
    library = False
    for line in traceback.rstrip("\n").splitlines():
        stripped = line.lstrip()
        if stripped.startswith('File "'):
            library = "site-packages" in line or "/asgispy/" in line or "<frozen" in line
            lines.append(Text(line, style="dim" if library else "bold"))
        elif line.startswith(" "):
            lines.append(Text(line, style="dim" if library else ""))
        else:
            lines.append(Text(line, style="bold red"))
    return lines


def status_style(status: object) -> str:
    if not isinstance(status, int):
        return "bold"
    if status >= 500:
        return "bold red"
    if status >= 400:
        return "bold yellow"
    if status >= 300:
        return "bold cyan"
    return "bold green"


def header_line(name: bytes, value: bytes) -> Text:
    line = Text(name.decode("latin-1"), style="bold blue")
    line.append(": ")
    if value == REDACTED:
        line.append("[redacted]", style="italic magenta")
    else:
        line.append(value.decode("latin-1"))
    return line


def content_type(headers: Sequence[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name.lower() == b"content-type":
            return value.decode("latin-1")
    return ""
