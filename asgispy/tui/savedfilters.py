"""Picking a saved filter in the dashboard: ``@`` lists the project's and the user's saved
filters (asgispy.filter.saved); Enter applies one as ``@name`` in the filter bar, so the
filter line shows its name and the list narrows as if it had been typed. ``ctrl+s`` there
saves the filter in use under a name, in the project's file (asgispy.filter.saving)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, OptionList, Static
from textual.widgets.option_list import Option

from asgispy.filter.grammar import FilterError
from asgispy.filter.saved import SavedFilters, load_saved
from asgispy.filter.saving import save_filter
from asgispy.tui.filterbar import FilterBar

if TYPE_CHECKING:
    from textual.app import App

__all__ = ["FilterNameScreen", "SavedFilterKeys", "SavedFilterScreen", "pick_saved_filter"]


class SavedFilterScreen(ModalScreen[str | None]):
    """The saved filters, one a line with what it says and where it was read; Enter picks one."""

    DEFAULT_CSS = """
    SavedFilterScreen { align: center middle; }
    #saved-box {
        width: 90%; max-width: 110; height: auto; max-height: 80%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    #saved-list { height: auto; max-height: 30; }
    """

    BINDINGS = [
        Binding("escape", "dismiss", "Close"),
        Binding("ctrl+s", "save", "Save the filter in use"),
    ]

    def __init__(self, saved: SavedFilters, current: str = "") -> None:
        super().__init__()
        self.saved = saved
        self.current = current
        self.names = list(saved.filters)

    def compose(self) -> ComposeResult:
        with Vertical(id="saved-box"):
            yield Static(Text("saved filters", style="bold"), id="saved-title")
            none = Option(
                Text("no saved filters yet: ctrl+s saves the filter in use", style="dim"), disabled=True
            )
            yield OptionList(*([self._option(name) for name in self.names] or [none]), id="saved-list")
            looked = ", ".join(self.saved.sources) or "no file"
            yield Static(Text(f"Enter applies one · from {looked}", style="dim"), id="saved-from")
        yield Footer()

    def _option(self, name: str) -> Option:
        entry = self.saved.filters[name]
        try:
            self.saved.resolve(name)
            problem = ""
        except FilterError as exc:
            problem = exc.message
        width = max(map(len, self.names)) + 3
        label = Text.assemble(
            (f"@{name}".ljust(width), "bold red" if problem else "bold"),
            (entry.expr or "(none)").ljust(30),
            (f" {entry.description}" if entry.description else "", "italic"),
            (f"   {entry.source}" if len(self.saved.sources) > 1 else "", "dim"),
            ("\n" + " " * width + "✖ " + problem if problem else "", "red"),
        )
        return Option(label, id=name, disabled=bool(problem))

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    async def action_dismiss(self, result: str | None = None) -> None:
        self.dismiss(result)

    def action_save(self) -> None:
        if not self.current:
            self.notify("Filter first (/), then save the filter here", severity="warning")
            return

        def named(name: str | None) -> None:
            if not name:
                return
            try:
                path = save_filter(name, self.current)
            except FilterError as exc:
                self.notify(exc.message, title="Not saved", severity="error", timeout=10)
                return
            except (OSError, TypeError, ValueError) as exc:  # a file that cannot be read or written
                self.notify(str(exc), title="Not saved", severity="error", timeout=10)
                return
            self.notify(f"@{name} = {self.current} in {path}", title="Filter saved")
            self.dismiss(name)

        self.app.push_screen(FilterNameScreen(self.current), named)


class FilterNameScreen(ModalScreen[str | None]):
    """The name to save the filter in use under; Enter saves, Escape does not."""

    DEFAULT_CSS = """
    FilterNameScreen { align: center middle; }
    #name-box {
        width: 70; max-width: 95%; height: auto;
        border: round $primary; background: $surface; padding: 0 1;
    }
    """

    BINDINGS = [Binding("escape", "dismiss", "Cancel")]

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="name-box"):
            yield Static(Text.assemble(("save ", "bold"), f"{self.current} ", ("as @name", "bold")))
            yield Input(placeholder="name: letters, digits, _ - .", id="saved-name")
        yield Footer()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)

    async def action_dismiss(self, result: str | None = None) -> None:
        self.dismiss(result)


class SavedFilterKeys:
    """The dashboard's action for ``@`` (see :mod:`asgispy.tui.keys`)."""

    def action_saved_filters(self) -> None:
        pick_saved_filter(cast("App[int]", self))


def pick_saved_filter(app: App[int]) -> None:
    """Read the saved filters afresh (the files may have changed) and offer them."""
    try:
        saved = load_saved()
    except FilterError as exc:
        app.notify(exc.message, title="Saved filters", severity="error", timeout=10)
        return

    def chosen(name: str | None) -> None:
        if name:
            bar = app.query_one(FilterBar)
            bar.display = True
            bar.input.value = f"@{name}"
            bar.apply()

    app.push_screen(SavedFilterScreen(saved, app.query_one(FilterBar).text), chosen)
