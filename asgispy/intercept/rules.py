"""Rules: the common ways of changing traffic, written in TOML instead of Python.

Each ``[[rule]]`` has a ``match`` (a filter expression) and one action: ``respond`` (a mock;
the app is not called), ``delay`` (seconds before the app sees the request), ``throttle``
(response bytes per second), ``fault`` (``"disconnect"`` or ``"abort"``), and for WebSocket
``close`` (a close code) or ``drop`` (drop messages containing a text). Which rule wins is
decided here, once per connection, by :meth:`RuleSet.plan`: every matching rule applies, in
file order, except that of the rules that answer or end a connection (respond, fault, close)
only the first one does. Delays add up, the lowest throttle applies, every drop applies.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asgispy.filter.grammar import Filter, FilterError, parse
from asgispy.model.connection import Connection

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]

__all__ = ["ACTIONS", "Plan", "Rule", "RuleError", "RuleSet", "load_rules", "rules_from"]

ACTIONS = ("respond", "delay", "throttle", "fault", "close", "drop")
FAULTS = ("disconnect", "abort")
_EXTRA = {"name", "match", "enabled", "after"}
#: the actions that answer or end a connection: only the first matching one applies
_ENDING = ("respond", "fault", "close")


class RuleError(ValueError):
    """A rules file or rule that cannot be used, with where and why."""


@dataclass
class Rule:
    """One rule: where it applies, what it does, and whether it is on."""

    index: int
    action: str
    value: Any
    match: Filter | None = None
    name: str = ""
    enabled: bool = True
    #: fault = "abort": response body bytes sent before the connection is cut (None: half the first chunk)
    after: int | None = None

    @property
    def label(self) -> str:
        return self.name or f"rule {self.index + 1}"

    def describe(self) -> str:
        """What the rule does, in a few words (the dashboard's list, the connection's record)."""
        action, value = self.action, self.value
        if action == "respond":
            return f"respond {value['status']}"
        if action == "delay":
            return f"delay {value:g}s"
        if action == "throttle":
            return f"throttle {value} B/s"
        if action == "fault":
            return f"fault {value}" + (f" after {self.after} B" if self.after is not None else "")
        if action == "close":
            return f"close {value}"
        return f"drop messages containing {value!r}"

    def matches(self, conn: Connection | None) -> bool:
        if not self.enabled:
            return False
        if self.match is None or conn is None:
            return self.match is None
        return self.match(conn)


@dataclass
class Plan:
    """What the rules do to one connection, decided when it begins."""

    applied: list[Rule] = field(default_factory=list)
    delay: float = 0.0
    respond: Rule | None = None
    fault: Rule | None = None
    throttle: Rule | None = None
    close: Rule | None = None
    drops: list[Rule] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.applied)


class RuleSet:
    """Rules in file order, each turned on and off while the app runs."""

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self.rules = list(rules)
        self.needs_match = any(rule.match is not None for rule in self.rules)
        #: whether any rule is on: kept by toggle(), read once per connection
        self.any_enabled = any(rule.enabled for rule in self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def __iter__(self) -> Any:
        return iter(self.rules)

    def toggle(self, index: int, enabled: bool | None = None) -> Rule:
        rule = self.rules[index]
        rule.enabled = (not rule.enabled) if enabled is None else enabled
        self.any_enabled = any(r.enabled for r in self.rules)
        return rule

    def plan(self, conn: Connection | None, scope_type: str) -> Plan:
        """Which rules apply to a connection of ``scope_type`` that ``conn`` describes."""
        plan = Plan()
        for rule in self.rules:
            if not _applies(rule.action, scope_type) or not rule.matches(conn):
                continue
            action = rule.action
            if action in _ENDING:
                if plan.respond or plan.fault or plan.close:
                    continue
                setattr(plan, action, rule)
            elif action == "delay":
                plan.delay += float(rule.value)
            elif action == "throttle":
                if plan.throttle is None or rule.value < plan.throttle.value:
                    plan.throttle = rule
            else:
                plan.drops.append(rule)
            plan.applied.append(rule)
        return plan


def _applies(action: str, scope_type: str) -> bool:
    if action == "delay":
        return scope_type in ("http", "websocket")
    if action in ("close", "drop"):
        return scope_type == "websocket"
    return scope_type == "http"


def _respond(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise RuleError(f'{where}: respond is a table: {{ status = 503, headers = {{...}}, body = "..." }}')
    unknown = set(value) - {"status", "headers", "body", "json"}
    if unknown:
        raise RuleError(f"{where}: respond does not know {', '.join(sorted(unknown))}")
    status = value.get("status", 200)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 999:
        raise RuleError(f"{where}: respond.status must be a number from 100 to 999")
    headers = value.get("headers", {})
    if not isinstance(headers, Mapping) or not all(
        isinstance(v, (str, int, float)) for v in headers.values()
    ):
        raise RuleError(f"{where}: respond.headers is a table of names and text values")
    pairs = [(str(k), str(v)) for k, v in headers.items()]
    if "json" in value:
        if "body" in value:
            raise RuleError(f"{where}: respond has both body and json: choose one")
        import orjson

        body = orjson.dumps(value["json"])
        if not any(k.lower() == "content-type" for k, _ in pairs):
            pairs.append(("content-type", "application/json"))
    else:
        text = value.get("body", "")
        if not isinstance(text, str):
            raise RuleError(f"{where}: respond.body is text")
        body = text.encode("utf-8")
        if text and not any(k.lower() == "content-type" for k, _ in pairs):
            pairs.append(("content-type", "text/plain; charset=utf-8"))
    return {"status": status, "headers": pairs, "body": body}


def _value(action: str, value: Any, where: str) -> Any:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if action == "respond":
        return _respond(value, where)
    if action == "delay":
        if not number or value < 0:
            raise RuleError(f"{where}: delay is a number of seconds, 0 or more")
        return float(value)
    if action == "throttle":
        if not number or value <= 0:
            raise RuleError(f"{where}: throttle is response bytes per second, more than 0")
        return int(value) or 1
    if action == "fault":
        if value not in FAULTS:
            raise RuleError(f'{where}: fault is "disconnect" or "abort", not {value!r}')
        return value
    if action == "close":
        if not isinstance(value, int) or isinstance(value, bool) or not 1000 <= value <= 4999:
            raise RuleError(f"{where}: close is a WebSocket close code from 1000 to 4999")
        return value
    if not isinstance(value, str) or not value:
        raise RuleError(f"{where}: drop is the text a message must contain to be dropped")
    return value


def rule_from(table: Mapping[str, Any], index: int, source: str = "rules") -> Rule:
    """One rule from its table, checked: one action, a valid match, known keys only."""
    where = f"{source}: rule {index + 1}"
    if not isinstance(table, Mapping):
        raise RuleError(f"{where} is not a table")
    name = table.get("name", "")
    if name:
        where = f"{source}: rule {index + 1} ({name})"
    actions = [key for key in ACTIONS if key in table]
    if len(actions) != 1:
        found = ", ".join(actions) if actions else "none"
        raise RuleError(f"{where}: a rule has one action of {', '.join(ACTIONS)} (found {found})")
    unknown = set(table) - _EXTRA - set(ACTIONS)
    if unknown:
        raise RuleError(f"{where}: unknown key {', '.join(sorted(unknown))}")
    match_text = table.get("match")
    match = None
    if match_text is not None:
        if not isinstance(match_text, str):
            raise RuleError(f"{where}: match is a filter expression (text)")
        try:
            match = parse(match_text) if match_text.strip() else None
        except FilterError as exc:
            raise RuleError(f"{where}: match {match_text!r}: {exc}") from exc
    action = actions[0]
    after = table.get("after")
    if after is not None and (action != "fault" or table.get("fault") != "abort"):
        raise RuleError(f'{where}: after goes with fault = "abort" only')
    if after is not None and (not isinstance(after, int) or isinstance(after, bool) or after < 0):
        raise RuleError(f"{where}: after is a number of bytes, 0 or more")
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise RuleError(f"{where}: enabled is true or false")
    return Rule(
        index=index,
        action=action,
        value=_value(action, table[action], where),
        match=match,
        name=str(name),
        enabled=enabled,
        after=after,
    )


def rules_from(data: Mapping[str, Any] | Iterable[Mapping[str, Any]], source: str = "rules") -> RuleSet:
    """A rule set from a parsed TOML document (``{"rule": [...]}``) or a list of rule tables."""
    if isinstance(data, Mapping):
        unknown = set(data) - {"rule"}
        if unknown:
            raise RuleError(f"{source}: unknown table {', '.join(sorted(unknown))} (rules are [[rule]])")
        tables = data.get("rule", [])
        if not isinstance(tables, list):
            raise RuleError(f"{source}: rules are written [[rule]]")
    else:
        tables = list(data)
    return RuleSet(rule_from(table, i, source) for i, table in enumerate(tables))


def load_rules(path: str | Path) -> RuleSet:
    """The rules of a TOML file, checked (every problem as a :class:`RuleError`)."""
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RuleError(f"rules file {str(file)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(f"cannot read rules file {str(file)!r}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(f"{file}: not valid TOML: {exc}") from exc
    return rules_from(data, str(file))
