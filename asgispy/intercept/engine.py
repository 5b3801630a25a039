"""``Intercept``: the ASGI app Spy puts between itself and the app when addons or rules are set.

Spy records above it (what the client sent and got); a tap below it records what the app saw
and sent, so the layers view shows asgispy's own changes as a layer of their own. Once per
connection it decides which rules and addons apply, from the request as it arrived; a
connection nothing applies to goes straight to the app.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from asgispy.intercept.addons import Addon, addons_from
from asgispy.intercept.http import serve_http
from asgispy.intercept.journal import Journal
from asgispy.intercept.rules import RuleSet, load_rules, rules_from
from asgispy.intercept.websocket import serve_websocket
from asgispy.model.connection import Connection
from asgispy.types import ASGIApp, Receive, Scope, Send

__all__ = ["Intercept", "request_view"]

logger = logging.getLogger("asgispy")

#: the scope keys a filter reads before the response: plain values only
_VIEW_KEYS = (
    "type",
    "http_version",
    "method",
    "scheme",
    "path",
    "raw_path",
    "query_string",
    "root_path",
    "headers",
    "client",
    "server",
    "subprotocols",
)


def request_view(scope: Scope) -> Connection:
    """The connection as far as it is known when it begins, for the filter of a rule or addon
    (fields of the response, such as ``status:``, match nothing yet)."""
    plain = {key: scope[key] for key in _VIEW_KEYS if key in scope}
    headers = plain.get("headers")
    if headers is not None:
        plain["headers"] = [(bytes(k), bytes(v)) for k, v in headers]
    return Connection.from_values("", str(scope.get("type", "")), plain, (), None)


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
    """Applies addons and rules to the connections of ``app``; everything else passes through."""

    layer_name = "asgispy intercept"

    def __init__(self, app: ASGIApp, addons: Iterable[Any] = (), rules: Any = None) -> None:
        self.app = app
        self.addons: list[Addon] = addons_from(addons)
        self.rules: RuleSet = rule_set(rules)

    @property
    def needs_view(self) -> bool:
        return self.rules.needs_match or any(a.match is not None for a in self.addons)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        try:
            view = request_view(scope) if self.needs_view else None
            plan = self.rules.plan(view, kind) if len(self.rules) else None
            addons = [a for a in self.addons if a.matches(view)]
        except Exception as exc:
            logger.exception("asgispy could not match rules and addons; the connection goes on untouched")
            Journal().failed("asgispy", "match", exc)
            await self.app(scope, receive, send)
            return
        if not plan and not addons:
            await self.app(scope, receive, send)
        elif kind == "http":
            await serve_http(self, scope, receive, send, plan or None, addons)
        else:
            await serve_websocket(self, scope, receive, send, plan or None, addons)
