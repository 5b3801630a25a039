"""The editor: a request (or a response) as text, for a held connection or one to send again.

The text is the form of :mod:`asgispy.replay.editing` (first line, headers, a blank line, the
body). The screen says what its keys do in its footer; what the user chose comes back through
``dismiss`` as an :class:`Edited`, or None when they went back without deciding (a held
connection then stays held, until its timeout).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Static, TextArea

from asgispy.replay.editing import EditError, parse_request, parse_response

__all__ = ["EditScreen", "Edited"]


@dataclass(frozen=True)
class Edited:
    """The user's choice: ``resume`` (or ``send``) with ``edits``, ``answer`` or ``drop``."""

    action: str
    edits: dict[str, Any]


class EditScreen(ModalScreen["Edited | None"]):
    """Edit ``text``; ``mode`` is ``held`` (resume, answer, drop), ``held-response`` or ``resend``."""

    BINDINGS = [
        Binding("ctrl+s", "go", "Send / resume", priority=True),
        Binding("ctrl+o", "answer", "Answer instead", priority=True),
        Binding("ctrl+d", "drop", "Drop", priority=True),
        Binding("escape", "back", "Back (stays held)", priority=True),
    ]

    def __init__(self, title: str, text: str, mode: str) -> None:
        super().__init__()
        self.title_text = title
        self.text = text
        self.mode = mode
        self._answering = False

    def compose(self) -> ComposeResult:
        with Vertical(id="edit-box"):
            yield Static(Text(self.title_text, style="bold"), id="edit-title")
            yield TextArea(self.text, id="edit-text", soft_wrap=True, show_line_numbers=True)
            yield Static("", id="edit-error")
            yield Static(Text(self._hint(), style="dim"), id="edit-hint")
        yield Footer()

    def _hint(self) -> str:
        if self.mode == "resend":
            return "ctrl+s sends it to the app (the answer is a new connection)  ·  esc goes back"
        if self.mode == "held-response":
            return "ctrl+s lets this response go to the client  ·  ctrl+d drops it (502)  ·  esc: still held"
        return (
            "ctrl+s lets the request go on to the app  ·  ctrl+o answers it yourself (edit the response)  "
            "·  ctrl+d drops it (502)  ·  esc: still held"
        )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.mode == "resend" and action in ("answer", "drop"):
            return False
        return not (self.mode == "held-response" and action == "answer")

    def on_mount(self) -> None:
        self.query_one(TextArea).focus()

    def _error(self, message: str) -> None:
        self.query_one("#edit-error", Static).update(Text(message, style="bold red"))

    def action_go(self) -> None:
        text = self.query_one(TextArea).text
        try:
            if self._answering or self.mode == "held-response":
                edits = parse_response(text)
            else:
                edits = parse_request(text)
        except EditError as exc:
            self._error(str(exc))
            return
        if self._answering:
            self.dismiss(Edited("answer", edits))
        else:
            self.dismiss(Edited("send" if self.mode == "resend" else "resume", edits))

    def action_answer(self) -> None:
        """Switch to writing the response to answer with (the app is not called)."""
        if self._answering:
            return
        self._answering = True
        self.query_one(TextArea).text = "200\ncontent-type: text/plain\n\n"
        self.query_one("#edit-title", Static).update(Text(f"{self.title_text}: answer with", style="bold"))
        self.query_one("#edit-hint", Static).update(
            Text("write the response; ctrl+s answers the client with it  ·  esc: still held", style="dim")
        )

    def action_drop(self) -> None:
        self.dismiss(Edited("drop", {}))

    def action_back(self) -> None:
        self.dismiss(None)
