"""The dashboard's hands on the traffic: breakpoints from the filter, the editor for what is held,
edit and resend, and the rules screen. A collaborator of the app, working through its
:class:`~asgispy.tui.desk.Desk` (the control line) and the editor screen.

Only apps that may be controlled (``asgispy run``, ``Spy(app, intercept=True)``) are held or
changed; for any other the keys say why nothing happens. Resending works for any live app whose
address the recording holds: the answer arrives as a new connection, marked as resent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asgispy.filter.grammar import FilterError
from asgispy.filter.saved import spell_out
from asgispy.replay.editing import request_text, response_text
from asgispy.replay.resend import base_url, request_doc, resend
from asgispy.tui.desk import Desk
from asgispy.tui.editor import Edited, EditScreen
from asgispy.tui.filterbar import FilterBar

if TYPE_CHECKING:
    from asgispy.tui.app import Dashboard

__all__ = ["Intercepting", "InterceptingKeys"]

NOT_HERE = (
    "No app shown here may be held: serve it with asgispy run, or make it with Spy(app, intercept=True)"
)


class InterceptingKeys:
    """The dashboard's actions for its keys b, B, h, r and i (see :mod:`asgispy.tui.keys`)."""

    intercepting: Intercepting

    def action_break_here(self) -> None:
        self.intercepting.break_here("request")

    def action_break_response(self) -> None:
        self.intercepting.break_here("response")

    def action_edit_held(self) -> None:
        self.intercepting.edit_held()

    def action_resend(self) -> None:
        self.intercepting.resend()

    def action_rules(self) -> None:
        self.intercepting.show_rules()


class Intercepting:
    """Breakpoints, held connections and resending, for one dashboard."""

    def __init__(self, app: Dashboard, desk: Desk) -> None:
        self.app = app
        self.desk = desk
        self._told: set[str] = set()
        self._editing: str | None = None

    def producers_changed(self) -> None:
        self.desk.sync()

    def held_changed(self) -> None:
        """Say once when a connection is held; forget the ones let go."""
        held = self.app.store.held
        for id, doc in held.items():
            if id not in self._told:
                self._told.add(id)
                request = doc.get("request", {})
                what = f"{request.get('method', '')} {request.get('path', '')}".strip()
                phase = "response" if doc.get("phase") == "response" else "request"
                self.app.notify(
                    f"{what} ({phase}): h to edit, resume, answer or drop", title="Held", timeout=10
                )
        self._told &= set(held)

    def break_here(self, phase: str = "request") -> None:
        """Hold what the current filter matches (or stop holding it, if it does already)."""
        app = self.app
        if not self.desk.apps:
            app.notify(NOT_HERE, severity="warning", timeout=8)
            return
        try:  # the app matches breakpoints itself, knowing no saved filters: @name written out
            expression = spell_out(app.query_one(FilterBar).text.strip())
        except FilterError as exc:
            app.notify(exc.message, title="Breakpoint not set", severity="error")
            return
        added = self.desk.toggle(expression, phase)
        shown = expression or "every connection"
        if added:
            app.notify(f"holding {phase}s matching {shown}", title="Breakpoint set")
        else:
            app.notify(f"no longer holding {phase}s matching {shown}", title="Breakpoint removed")
        app.status.flags.breakpoints = len(self.desk.points)

    def edit_held(self) -> None:
        """Open the editor on the selected connection if it is held, else on the oldest held."""
        app = self.app
        held = app.store.held
        if not held:
            app.notify("Nothing is held (b holds what the filter matches)", severity="warning")
            return
        selected = app.connections.selected
        id = (
            selected.id
            if selected is not None and selected.id in held
            else min(held, key=lambda i: float(held[i].get("since", 0)))
        )
        doc = held[id]
        if doc.get("phase") == "response" and "response" in doc:
            text, mode = response_text(doc["response"]), "held-response"
        else:
            text, mode = request_text(doc.get("request", {})), "held"
        request = doc.get("request", {})
        title = f"held {doc.get('phase', 'request')}: {request.get('method', '')} {request.get('path', '')}"
        self._editing = id

        def decided(choice: Edited | None) -> None:
            self._editing = None
            if choice is None:
                return
            if not self.desk.decide(id, choice.action, choice.edits):
                app.notify(f"{id} is no longer held (it timed out, or its app went)", severity="warning")

        app.push_screen(EditScreen(title, text, mode), decided)

    def show_rules(self) -> None:
        """The rules of every controllable app (switch each on or off) and the breakpoints."""
        from asgispy.tui.rulesscreen import RulesScreen

        if not self.desk.apps and not self.desk.points:
            self.app.notify(NOT_HERE, severity="warning", timeout=8)
            return
        self.app.push_screen(RulesScreen(self.desk))

    def resend(self) -> None:
        """Open the editor on the selected request; sending it goes to the live app (over HTTP) or,
        for ``asgispy open FILE --app APP``, to that app in this process."""
        app = self.app
        conn = app.connections.selected
        if conn is None or conn.type != "http":
            app.notify("Select an HTTP request to send again", severity="warning")
            return
        url = None if app.in_process is not None else base_url(conn)
        if url is None and app.in_process is None:
            app.notify(
                "The app's address is not in the recording (a Unix socket?): "
                "open the session with --app APP to send it in-process",
                severity="warning",
            )
            return
        first = conn.id

        def chosen(choice: Edited | None) -> None:
            if choice is not None:
                app.run_worker(self._send(choice.edits, first, url), group="resend")

        where = url or "the app, in-process"
        title = f"send again: {conn.method} {conn.target} → {where}"
        app.push_screen(EditScreen(title, request_text(request_doc(conn)), "resend"), chosen)

    async def _send(self, doc: dict[str, Any], first: str, url: str | None) -> None:
        in_process = self.app.in_process
        if in_process is not None:
            result, session = await in_process.send(doc, first)
            if session is not None:
                self.app.store.add_session(session)  # a live app's copy comes back through the collector
        else:
            result = await resend(doc, first, url=url)
        if result.status is None:
            self.app.notify(result.error or "no answer", title="Not sent", severity="error")
            return
        note = f"; left out (masked): {', '.join(result.missing_secrets)}" if result.missing_secrets else ""
        where = url or "the app, in-process"
        self.app.notify(f"answered {result.status}{note}", title=f"Sent again to {where}")
