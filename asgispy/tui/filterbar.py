"""The filter line: typed text becomes a predicate over connections, errors shown in place."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Input, Label

__all__ = ["FilterBar"]


class FilterBar(Horizontal):
    """``/`` opens it; every keystroke re-filters (debounced), Enter or Escape goes back to the list.
    ``@name`` in it is a saved filter; ctrl+o picks one from a list."""

    BINDINGS = [
        Binding("escape", "close", "Close filter", show=False),
        # "@" is typed into the filter; this key lists the saved filters (the dashboard's @)
        Binding("ctrl+o", "saved_filters", "Saved filters"),
    ]

    class Changed(Message):
        """A valid filter was typed (``predicate`` None: show everything)."""

        def __init__(self, text: str, predicate: object | None) -> None:
            super().__init__()
            self.text = text
            self.predicate = predicate

    class Closed(Message):
        pass

    def __init__(self, *, id: str | None = None, delay: float = 0.12) -> None:
        super().__init__(id=id)
        self.delay = delay
        self.text = ""
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Label("filter", id="filter-label")
        yield Input(
            placeholder="text, method:POST status:>=400 path:/api/* type:websocket error @saved",
            id="filter-input",
        )
        yield Label("", id="filter-error")

    @property
    def input(self) -> Input:
        return self.query_one("#filter-input", Input)

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        timer = self._timer
        if timer is not None:
            timer.stop()
        self._timer = self.set_timer(self.delay, self.apply)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.apply()
        self.post_message(self.Closed())

    def apply(self) -> None:
        """Parse what is typed; a bad filter shows its error and leaves the list as it was."""
        from asgispy.filter.grammar import FilterError
        from asgispy.filter.saved import parse_with_saved

        text = self.input.value.strip()
        error = self.query_one("#filter-error", Label)
        if text == self.text and not error.has_class("shown"):
            return
        try:
            predicate = parse_with_saved(text).predicate if text else None
        except FilterError as exc:
            error.update(str(exc))
            error.add_class("shown")
            self.input.add_class("invalid")
            return
        error.update("")
        error.remove_class("shown")
        self.input.remove_class("invalid")
        self.text = text
        self.post_message(self.Changed(text, predicate))

    async def action_saved_filters(self) -> None:
        await self.app.run_action("saved_filters")

    def action_close(self) -> None:
        self.apply()
        self.post_message(self.Closed())
