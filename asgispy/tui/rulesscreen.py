"""The rules screen: every controllable app's rules, each switched on or off with Enter, and the
dashboard's breakpoints, each removed with Delete; redrawn as the apps report."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from asgispy.tui.desk import Desk

__all__ = ["RulesScreen"]


class RulesScreen(ModalScreen[None]):
    """Rules (Enter: on/off) and breakpoints (Delete: remove); Esc closes."""

    BINDINGS = [
        Binding("escape", "dismiss", "Close"),
        Binding("delete,backspace", "remove", "Remove breakpoint"),
    ]

    def __init__(self, desk: Desk) -> None:
        super().__init__()
        self.desk = desk
        self._shown: list[tuple[str, object]] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="rules-box"):
            yield Static(Text("rules and breakpoints", style="bold"), id="rules-title")
            yield OptionList(id="rules-list")
            yield Static(Text("Enter switches a rule on or off · Delete removes a breakpoint", style="dim"))
        yield Footer()

    def on_mount(self) -> None:
        self._draw()
        self.set_interval(0.3, self._draw)
        self.query_one(OptionList).focus()

    def _items(self) -> list[tuple[str, object, Text]]:
        items: list[tuple[str, object, Text]] = []
        for producer, rule in self.desk.rules():
            on = bool(rule.get("enabled", True))
            label = Text.assemble(
                ("● on  " if on else "○ off ", "bold green" if on else "dim"),
                (str(rule.get("label", "")), "bold"),
                "  ",
                str(rule.get("does", "")),
                (f"  ({producer})", "dim"),
            )
            items.append(("rule", (producer, int(rule.get("index", 0))), label))
        for index, point in enumerate(self.desk.points):
            label = Text.assemble(
                ("⏸ break ", "bold magenta"),
                (point["phase"], "dim"),
                "  ",
                point["expression"] or "(everything)",
            )
            items.append(("breakpoint", index, label))
        if not items:
            text = "no rules or breakpoints (b sets one from the filter; --rules FILE gives rules)"
            items.append(("none", None, Text(text, style="dim")))
        return items

    def _draw(self) -> None:
        items = self._items()
        shown = [(kind, key) for kind, key, _ in items]
        if shown == self._shown and all(
            str(self.query_one(OptionList).get_option_at_index(i).prompt) == str(label)
            for i, (_, _, label) in enumerate(items)
        ):
            return
        options = self.query_one(OptionList)
        highlighted = options.highlighted
        options.clear_options()
        options.add_options([Option(label) for _, _, label in items])
        options.highlighted = min(highlighted or 0, len(items) - 1)
        self._shown = shown

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        kind, key = self._shown[event.option_index]
        if kind == "rule" and isinstance(key, tuple):
            producer, index = key
            self.desk.toggle_rule(producer, index)

    def action_remove(self) -> None:
        highlighted = self.query_one(OptionList).highlighted
        if highlighted is None or highlighted >= len(self._shown):
            return
        kind, key = self._shown[highlighted]
        if kind == "breakpoint" and isinstance(key, int):
            self.desk.remove(key)
            self.app.status.flags.breakpoints = len(self.desk.points)  # type: ignore[attr-defined]
            self._draw()
