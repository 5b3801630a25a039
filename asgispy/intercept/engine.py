"""``Intercept``: the ASGI app Spy puts between itself and the app when addons, rules or
breakpoints may apply.

Spy records above it (what the client sent and got); when it changes a connection, a tap below
it records what the app saw and sent, so the layers view shows asgispy's own changes as a layer
of their own. Once per connection it decides which rules and addons apply, from the request as
it arrived; a connection nothing applies to goes straight to the app.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable
from typing import Any

from asgispy.capture.layers import LayerInfo, Tap, current_record, layer_name_of
from asgispy.intercept.addons import Addon, addons_from
from asgispy.intercept.breakpoints import Breakpoints, breakpoint_addon
from asgispy.intercept.exchange import Exchange
from asgispy.intercept.http import serve_http
from asgispy.intercept.journal import Journal
from asgispy.intercept.rules import RuleSet, load_rules, rules_from
from asgispy.intercept.websocket import serve_websocket
from asgispy.model.connection import Connection
from asgispy.model.event import Event
from asgispy.types import ASGIApp, Receive, Scope, Send

__all__ = ["Intercept", "request_view"]

logger = logging.getLogger("asgispy")

_unnamed = itertools.count(1)


def request_view(scope: Scope) -> Connection:
    """The connection as far as it is known when it begins, for the filter of a rule or addon
    (fields of the response, such as ``status:``, match nothing yet). It reads the scope itself,
    not a copy: it is matched at once and dropped."""
    return Connection.viewing(str(scope.get("type", "")), scope)


def response_view(scope: Scope, exchange: Exchange) -> Connection:
    """The connection with its response's start, for a response breakpoint's filter."""
    conn = request_view(scope)
    response = exchange.response
    if response is not None:
        start = {"type": "http.response.start", "status": response.status, "headers": response.headers.raw()}
        conn.add(Event.from_message("send", 0.0, start, None, None, None))
    return conn


def rule_set(rules: Any) -> RuleSet:
    """Rules as ``Spy(app, rules=...)`` takes them: a RuleSet, a TOML file's path, or tables."""
    if rules is None:
        return RuleSet()
    if isinstance(rules, RuleSet):
        return rules
    if isinstance(rules, str) or hasattr(rules, "__fspath__"):
        return load_rules(rules)
    return rules_from(rules)


class Intercept:
    """Applies addons, rules and breakpoints to the connections of ``app``; everything else
    passes through.

    ``layers`` says that Spy taps every layer itself (layers mode), so this one need not tap
    the app for its own changes.
    """

    layer_name = "asgispy intercept"

    def __init__(
        self,
        app: ASGIApp,
        addons: Iterable[Any] = (),
        rules: Any = None,
        *,
        max_body: int = 1024 * 1024,
        layers: bool = False,
    ) -> None:
        self.app = app
        self.addons: list[Addon] = addons_from(addons)
        self.rules: RuleSet = rule_set(rules)
        self.breakpoints = Breakpoints()
        self.max_body = max_body
        self.tapped_by_spy = layers
        self._app_layer = LayerInfo(layer_name_of(app), None)

    @property
    def active(self) -> bool:
        """Whether anything may apply to a connection (when not, Spy passes it straight on)."""
        return bool(self.addons or self.breakpoints.points) or self.rules.any_enabled

    def _needs_view(self) -> bool:
        return (
            self.rules.needs_match
            or any(a.match is not None for a in self.addons)
            or any(p.filter is not None for p in self.breakpoints.points)
        )

    def _inner(self) -> ASGIApp:
        """The app, tapped so that the record shows what it saw (unless Spy taps every layer)."""
        record = current_record.get()
        if record is None or self.tapped_by_spy or record.layers is not None:
            return self.app
        record.layer_infos = [LayerInfo(self.layer_name, None), self._app_layer]
        record.layers = [None, None]
        return Tap(self.app, 1, self.max_body)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if (kind != "http" and kind != "websocket") or not self.active:
            await self.app(scope, receive, send)
            return
        try:
            view = request_view(scope) if self._needs_view() else None
            plan = self.rules.plan(view, kind) if len(self.rules) else None
            addons = [a for a in self.addons if a.matches(view)]
            if kind == "http" and self.breakpoints:
                addons.append(
                    breakpoint_addon(self.breakpoints, _conn_id, lambda ex: response_view(scope, ex))
                )
        except Exception as exc:
            logger.exception("asgispy could not match rules and addons; the connection goes on untouched")
            Journal().failed("asgispy", "match", exc)
            await self.app(scope, receive, send)
            return
        if not plan and not addons:
            await self.app(scope, receive, send)
        elif kind == "http":
            await serve_http(self._inner(), scope, receive, send, plan or None, addons)
        else:
            await serve_websocket(self._inner(), scope, receive, send, plan or None, addons)


def _conn_id() -> str:
    record = current_record.get()
    return record.id if record is not None else f"unrecorded-{next(_unnamed)}"
