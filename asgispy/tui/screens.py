"""The modal screens: help, and where to write an export."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

__all__ = ["ExportScreen", "HelpScreen"]

_KEYS = (
    ("/", "filter the list (as you type; Enter or Esc to go back)"),
    ("↑ ↓ PgUp PgDn Home End", "move in the list (End follows again)"),
    ("Enter / Tab", "go to the event tree of the selected connection"),
    ("Esc", "back to the list"),
    ("space  Enter (in the tree)", "expand or collapse a node"),
    ("a", "expand every node of the event tree"),
    ("f", "follow the newest connection on/off"),
    ("p", "pause the screen (still collecting)"),
    ("x", "clear every connection"),
    ("e", "export the visible connections as a JSON session"),
    ("c", "copy the selected request as curl"),
    ("l", "show or hide the app's output"),
    ("t", "show or hide the timeline"),
    ("o", "switch the list's columns: sizes or timings"),
    ("m  then d", "mark a connection, then compare another with it"),
    ("ctrl+p", "command palette: every action by name"),
    ("?", "this help"),
    ("q", "quit"),
)

_FILTERS = (
    ("teapot", "free text: method, path, query, route, status, headers"),
    ("method:POST", "request method"),
    ("status:>=400  status:4xx  status:200-299", "response status"),
    ("path:/api/*  route:/items/{id}", "path (globs) or the route that matched"),
    ("type:websocket", "http, websocket or lifespan"),
    ("header:content-type=application/json  body:teapot", "a header, or text in a body"),
    ("duration:>100ms  size:>10k", "slow or large connections"),
    ("error  cut  open", "raised, cut off or cancelled, still in progress"),
    ("ttfb:>200ms  gap:>1s  blocked:>50ms  waited:>1s", "timing: first byte, gaps, backpressure"),
    ("violation  rule:http.content-length", "broke a rule of the ASGI spec"),
    ("layer:GZipMiddleware", "a middleware layer changed something (layers mode)"),
    ("-path:/health  !type:lifespan", "leave out what matches"),
    ("a b   a or b", "all terms must match; or joins groups"),
)


def _table(title: str, rows: tuple[tuple[str, str], ...]) -> Table:
    table = Table(title=title, title_style="bold", show_header=False, box=None, expand=True, padding=(0, 1))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for key, what in rows:
        table.add_row(key, what)
    return table


class HelpScreen(ModalScreen[None]):
    """Keys, mouse and filter syntax; any of Esc, q or ? closes it."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(Text("asgispy dashboard", style="bold"), id="help-title")
            yield Static(_table("Keys", _KEYS))
            yield Static(_table("Filter", _FILTERS))
            yield Static(
                Text(
                    "Mouse: click a row to select it, double-click to open its events, "
                    "click tree nodes to expand them, scroll anywhere.",
                    style="dim",
                )
            )

    def action_dismiss(self, result: None = None) -> None:  # type: ignore[override]
        self.dismiss(None)


class DiffScreen(ModalScreen[None]):
    """Two connections compared (``m`` marks one, ``d`` compares the selected one with it)."""

    BINDINGS = [Binding("escape,q,d", "dismiss", "Close")]

    def __init__(self, title: str, lines: list[str]) -> None:
        super().__init__()
        self.title_text = title
        self.lines = lines

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(Text(self.title_text, style="bold"), id="help-title")
            body = Text()
            for line in self.lines or ["  no difference (volatile headers such as date are not compared)"]:
                if " → " in line and not line.startswith("      "):
                    where, _, change = line.partition(": ")
                    body.append(where + ": ", style="bold")
                    body.append(change + "\n")
                else:
                    body.append(line + "\n", style="dim" if line.startswith("      ") else "")
            yield Static(body)
            yield Static(Text("Esc closes", style="dim"))

    def action_dismiss(self, result: None = None) -> None:  # type: ignore[override]
        self.dismiss(None)


class ExportScreen(ModalScreen[Path | None]):
    """Asks where to write the export; Enter writes, Esc cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, default: Path, count: int) -> None:
        super().__init__()
        self.default = default
        self.count = count

    def compose(self) -> ComposeResult:
        with Vertical(id="export-box"):
            yield Label(f"Export {self.count:,} connection{'s' if self.count != 1 else ''} to:")
            yield Input(str(self.default), id="export-path")
            yield Label("Enter to write, Esc to cancel", classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        self.dismiss(Path(value).expanduser() if value else None)

    def action_cancel(self) -> None:
        self.dismiss(None)
