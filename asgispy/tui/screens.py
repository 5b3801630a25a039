"""The modal screens: help, a comparison, and where and how to write an export."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Label, RadioButton, RadioSet, Static

from asgispy.exports.formats import DESCRIPTIONS, EXTENSIONS, FORMATS, TITLES, Format, format_for, with_format

__all__ = ["DiffScreen", "ExportChoice", "ExportScreen", "HelpScreen"]

_KEYS = (
    ("/", "filter the list (as you type; Enter or Esc to go back)"),
    ("@  (ctrl+o in the filter)", "pick a saved filter (asgispy.toml, your config)"),
    ("↑ ↓ PgUp PgDn Home End", "move in the list (End follows again)"),
    ("Enter / Tab", "go to the event tree of the selected connection"),
    ("Esc", "back to the list"),
    ("space  Enter (in the tree)", "expand or collapse a node"),
    ("a", "expand every node of the event tree"),
    ("f", "follow the newest connection on/off"),
    ("p", "pause the screen (still collecting)"),
    ("x", "clear every connection"),
    ("e", "export what is shown: JSON session, HAR, JSONL, curl"),
    ("c", "copy the selected request as curl"),
    ("l", "show or hide the app's output"),
    ("t", "show or hide the timeline"),
    ("o", "switch the list's columns: sizes or timings"),
    ("S", "statistics of what the filter shows: per route latency, a histogram, traffic over time"),
    ("m  then d", "mark a connection, then compare another with it"),
    ("b  B", "hold requests (b) or responses (B) that the filter matches; again to stop (asgispy run)"),
    ("h", "edit a held connection: resume it, answer it yourself, or drop it"),
    ("r", "edit the selected request and send it again to the app"),
    ("i", "the app's rules (Enter: on/off) and the breakpoints (Delete: remove)"),
    ("ctrl+p", "command palette: every action by name"),
    ("?", "this help"),
    ("q", "quit"),
)

_FILTERS = (
    ("teapot", "free text: method, path, query, route, status, headers"),
    ("@slow", "a saved filter, by name (with other terms: @slow path:/api/*)"),
    ("method:POST", "request method"),
    ("status:>=400  status:4xx  status:200-299", "response status"),
    ("path:/api/*  route:/items/{id}", "path (globs) or the route that matched"),
    ("type:websocket", "http, websocket or lifespan"),
    ("header:content-type=application/json  body:teapot", "a header, or text in a body"),
    ("duration:>100ms  size:>10k", "slow or large connections"),
    ("error  cut  open", "raised, cut off or cancelled, still in progress"),
    ("ttfb:>200ms  gap:>1s  blocked:>50ms  waited:>1s", "timing: first byte, gaps, backpressure"),
    ("held:>1s", "held at a breakpoint (duration: and ttfb: leave holds out)"),
    ("calls:>3  call:pay.example  queries:>10", "what the app did inside (inside mode): calls, SQL"),
    ("log:warning", "logged at that level or worse (inside mode)"),
    ("violation  rule:http.content-length", "broke a rule of the ASGI spec"),
    ("layer:GZipMiddleware", "a middleware layer changed something (layers mode)"),
    ("changed  resent", "changed by asgispy's rules, addons or a breakpoint; sent again"),
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


@dataclass(frozen=True)
class ExportChoice:
    """Where to write the export, and in which format."""

    path: Path
    format: Format


class ExportScreen(ModalScreen[ExportChoice | None]):
    """Asks where to write the export and in which format.

    The format follows the file name's extension as it is typed (``.har`` is HAR), and picking
    a format (up and down, or a click) rewrites the extension, so the name and the format never
    disagree. Enter writes, Esc cancels. Focus stays in the file name: every key edits it, and
    the arrows, which a one-line input has no use for, pick the format.
    """

    BINDINGS = [
        # Priority: the input would take these keys first (the arrows to scroll, which it cannot).
        Binding("enter", "write", "Write", priority=True),
        Binding("escape", "cancel", "Cancel", priority=True),
        Binding("down", "next_format", "Next format", key_display="↓", priority=True),
        Binding("up", "previous_format", "Previous format", key_display="↑", priority=True),
    ]

    def __init__(
        self,
        default: Path,
        count: int,
        *,
        total: int | None = None,
        filter_text: str = "",
        format: Format = "json",
        base: Path | None = None,
    ) -> None:
        super().__init__()
        self.default = default
        self.count = count
        self.total = count if total is None else total
        self.filter_text = filter_text
        self.format: Format = format_for(default) or format
        self.base = base if base is not None else default.parent

    def compose(self) -> ComposeResult:
        with Vertical(id="export-box"):
            yield Label(self._what(), id="export-what")
            yield Input(str(self.default), id="export-path")
            yield Label("", id="export-where", classes="hint")
            with RadioSet(id="export-format"):
                for fmt in FORMATS:
                    label = f"{TITLES[fmt]} ({EXTENSIONS[fmt]})"
                    yield RadioButton(label, value=fmt == self.format, id=f"format-{fmt}")
            yield Label(DESCRIPTIONS[self.format], id="export-about", classes="hint")
        yield Footer()

    def on_mount(self) -> None:
        radios = self.query_one(RadioSet)
        radios.can_focus = False  # the arrows belong to the screen, typing to the file name
        self.query_one(Input).focus()
        self._check_path(self.query_one(Input).value)

    def _what(self) -> str:
        count = f"{self.count:,} connection{'s' if self.count != 1 else ''}"
        if self.filter_text:
            return f"Export the {count} the filter shows ({self.filter_text}), of {self.total:,}"
        return f"Export all {count}"

    @property
    def path(self) -> Path | None:
        """The file name typed, relative to the dashboard's folder; None when empty."""
        value = self.query_one(Input).value.strip()
        return self.base / Path(value).expanduser() if value else None

    # The name and the format follow each other --------------------------------------------------

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        named = format_for(event.value.strip())
        if named is not None and named != self.format:
            self._choose(named)
        self._check_path(event.value)

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        event.stop()
        self._choose(next(f for f in FORMATS if event.pressed.id == f"format-{f}"))

    def _choose(self, fmt: Format) -> None:
        """Make ``fmt`` the format: its description, the name's extension, its radio button."""
        self.format = fmt
        self.query_one("#export-about", Label).update(DESCRIPTIONS[fmt])
        field = self.query_one(Input)
        renamed = with_format(field.value.strip(), fmt)
        if renamed and renamed != field.value.strip():
            field.value = renamed
            field.cursor_position = len(renamed)
        self.query_one(f"#format-{fmt}", RadioButton).value = True

    def _check_path(self, value: str) -> None:
        """Say, as the name is typed, what writing there would do that the user may not expect."""
        path = self.path if value.strip() else None
        if path is None:
            warning = "type a file name"
        elif path.is_dir():
            warning = "that is a folder: add a file name"
        elif path.exists():
            warning = "the file exists and will be replaced"
        elif not path.parent.is_dir():
            warning = f"there is no folder {path.parent}"
        else:
            warning = ""
        where = self.query_one("#export-where", Label)
        where.update(warning)
        where.display = bool(warning)

    # Keys ----------------------------------------------------------------------------------------

    # Enter and the arrows are priority bindings, acted on as their key arrives, while keys typed
    # just before (fast typing, a pasted line) may still wait in the file name's queue. So what
    # they do is queued behind those keys, and reads the format from the name as it then is.

    def action_next_format(self) -> None:
        self.query_one(Input).call_later(self._step, 1)

    def action_previous_format(self) -> None:
        self.query_one(Input).call_later(self._step, -1)

    def action_write(self) -> None:
        self.query_one(Input).call_later(self._write)

    def _current_format(self) -> Format:
        return format_for(self.query_one(Input).value.strip()) or self.format

    def _step(self, by: int) -> None:
        self._choose(FORMATS[(FORMATS.index(self._current_format()) + by) % len(FORMATS)])

    def _write(self) -> None:
        path = self.path
        if path is None or path.is_dir():
            self.app.bell()
            return
        self.dismiss(ExportChoice(path, self._current_format()))

    def action_cancel(self) -> None:
        self.dismiss(None)
