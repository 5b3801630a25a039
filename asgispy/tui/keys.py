"""The dashboard's keys: each binding with the words the footer and the command palette show.

In one place so that the footer, the help screen (asgispy.tui.screens) and the docs
(docs/dashboard.md) are kept in step with what the keys do.
"""

from __future__ import annotations

from textual.binding import Binding

__all__ = ["DASHBOARD_KEYS"]

DASHBOARD_KEYS: tuple[Binding, ...] = (
    Binding("slash", "filter", "Filter"),
    Binding("S", "stats", "Stats"),
    Binding("at", "saved_filters", "Saved filters", key_display="@", show=False),
    Binding("f", "toggle_follow", "Follow"),
    Binding("p", "toggle_pause", "Pause"),
    Binding("x", "clear", "Clear"),
    Binding("e", "export", "Export"),
    Binding("c", "copy_curl", "Copy curl"),
    Binding("l", "toggle_log", "App output"),
    Binding("t", "toggle_timeline", "Timeline"),
    Binding("o", "cycle_columns", "Columns"),
    Binding("m", "mark", "Mark", show=False),
    Binding("d", "diff", "Diff with marked", show=False),
    Binding("a", "expand_all", "Expand all", show=False),
    Binding("tab", "focus_next", "Next pane", show=False),
    Binding("b", "break_here", "Break on filter", show=False),
    Binding("B", "break_response", "Break responses on filter", show=False),
    Binding("h", "edit_held", "Edit held", show=False),
    Binding("r", "resend", "Edit and resend", show=False),
    Binding("i", "rules", "Rules and breakpoints", show=False),
    Binding("question_mark", "help", "Help"),
    Binding("q", "quit", "Quit"),
)
