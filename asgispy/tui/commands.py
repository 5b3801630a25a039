"""Every dashboard action in the command palette (ctrl+p), with a line of help each."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

__all__ = ["ACTIONS", "DashboardCommands"]

#: (title in the palette, action name on the app, help)
ACTIONS: tuple[tuple[str, str, str], ...] = (
    ("Filter connections", "filter", "Type text or field expressions: method:POST status:>=400 error"),
    (
        "Pick a saved filter",
        "saved_filters",
        "The [filters] of asgispy.toml, pyproject.toml or your config: @name",
    ),
    ("Clear the filter", "clear_filter", "Show every connection again"),
    ("Follow new connections", "toggle_follow", "Keep the newest connection selected, or stay where you are"),
    ("Pause the screen", "toggle_pause", "Freeze the screen; connections are still collected"),
    ("Clear connections", "clear", "Forget every connection collected so far"),
    (
        "Export visible connections",
        "export",
        "Write the connections shown (filtered) as a JSON session, HAR, JSON lines or curl",
    ),
    ("Copy request as curl", "copy_curl", "Copy the selected request as a curl command"),
    ("Toggle app output", "toggle_log", "Show or hide what the served app printed"),
    (
        "Toggle the timeline",
        "toggle_timeline",
        "Show or hide when each message of the selected connection happened",
    ),
    (
        "Switch list columns",
        "cycle_columns",
        "Sizes, or timings: TTFB, last byte, largest gap, blocked, waited",
    ),
    (
        "Statistics and plots",
        "stats",
        "Per route: count, errors, latency percentiles; a latency histogram; requests over time",
    ),
    ("Show events of the selected connection", "focus_tree", "Move to the event tree"),
    ("Expand all events", "expand_all", "Open every node of the event tree"),
    ("Mark the selected connection", "mark", "Then select another one and compare them (d)"),
    ("Compare with the marked connection", "diff", "Status, headers, body field by field, frames"),
    ("Break on the filter", "break_here", "Hold requests the filter matches before the app sees them"),
    ("Break responses on the filter", "break_response", "Hold responses the filter matches (status: works)"),
    ("Edit a held connection", "edit_held", "Resume it with edits, answer it yourself, or drop it"),
    ("Edit and resend", "resend", "Send the selected request again to the app, edited"),
    ("Rules and breakpoints", "rules", "Switch the app's rules on and off; remove breakpoints"),
    ("Help", "help", "Keys, mouse and filter syntax"),
)


class DashboardCommands(Provider):
    """The dashboard's actions, searchable by their titles."""

    async def discover(self) -> Hits:
        for title, action, help in ACTIONS:
            yield DiscoveryHit(title, partial(self.app.run_action, action), help=help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, action, help in ACTIONS:
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), partial(self.app.run_action, action), help=help)
