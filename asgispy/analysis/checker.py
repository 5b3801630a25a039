"""A live ASGI protocol checker: feed it a connection's messages, get back what broke the spec.

The checker belongs to the viewer side (collector, store, ``asgispy.load``, ``asgispy check``):
it reads recorded messages and never runs on the app's request path. One :class:`Checker`
follows one connection, message by message::

    checker = Checker("http", method="GET")
    for index, (direction, message) in enumerate(events):
        for violation in checker.feed(index, direction, message):
            ...
    checker.finish("completed")
    checker.violations          # everything reported, in order

Messages are taken exactly as the app saw them (bytes as bytes) and may be anything at all:
the checker reports what it cannot read instead of raising. It keeps its state in plain
attributes and allocates nothing for a message that breaks no rule, so a viewer can feed it
every message it receives. The rules themselves are in :mod:`asgispy.analysis.rules`.

This module is the core: it reads a message's shape and hands it, with one call, to the
checks of its scope's protocol (:mod:`asgispy.analysis.httpchecks`,
:mod:`asgispy.analysis.websocketchecks`, :mod:`asgispy.analysis.lifespanchecks`), which
keep that protocol's state and report through the core.

Sequence rules (a second start, something after the final body, a send before accept...)
are reported once per connection, at the first offending event; rules about one message's
fields are reported for every message that breaks them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, cast

from asgispy.analysis.fieldchecks import MISSING, show
from asgispy.analysis.httpchecks import HTTPChecks
from asgispy.analysis.lifespanchecks import LifespanChecks
from asgispy.analysis.rules import RULES
from asgispy.analysis.websocketchecks import WebSocketChecks
from asgispy.types import Direction

__all__ = ["CheckedEvent", "Checker", "Violation", "check_events"]


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule: which, how serious, what exactly happened, and at which event.

    ``event`` is the index of the event at fault in the connection's event list; it is None
    only when no single event is (a response that was never finished).
    """

    rule: str
    severity: str
    message: str
    event: int | None


class _NoViolations(list[Violation]):
    """The empty list :meth:`Checker.feed` returns for a clean message: shared, so read-only."""

    __slots__ = ()

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError("the empty result of Checker.feed is shared and cannot be changed")

    append = extend = insert = remove = pop = clear = sort = reverse = _refuse
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse


_NO_VIOLATIONS: list[Violation] = _NoViolations()

#: The message types the app sends and receives, per scope type.
_TYPES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "http": (HTTPChecks.sends, HTTPChecks.receives),
    "websocket": (WebSocketChecks.sends, WebSocketChecks.receives),
    "lifespan": (LifespanChecks.sends, LifespanChecks.receives),
}
_NONE: frozenset[str] = frozenset()


class Checker:
    """Checks one connection's messages against the ASGI spec, one message at a time.

    ``scope_type`` is the scope's ``type`` (``http``, ``websocket``, ``lifespan``; any other
    type gets only the message-shape check) and ``method`` the HTTP method, for the HEAD rules.
    """

    __slots__ = (
        "_checks",
        "_receive",
        "_receive_types",
        "_reported",
        "_send",
        "_send_types",
        "finished",
        "head",
        "method",
        "scope_type",
        "violations",
    )

    def __init__(self, scope_type: str, method: str | None = None) -> None:
        self.scope_type = scope_type
        self.method = method
        self.head = isinstance(method, str) and method.upper() == "HEAD"
        #: everything reported so far, in the order it was found
        self.violations: list[Violation] = []
        self.finished = False
        #: sequence rules already reported (each is reported once per connection)
        self._reported: set[str] = set()

        types = _TYPES.get(scope_type) if type(scope_type) is str else None
        self._send_types, self._receive_types = types or (_NONE, _NONE)
        # The scope's protocol checks; their send and receive are kept bound, so that each
        # message costs one call to them.
        self._checks: HTTPChecks | WebSocketChecks | LifespanChecks | None
        if scope_type == "http":
            self._checks = HTTPChecks(self, self.head)
        elif scope_type == "websocket":
            self._checks = WebSocketChecks(self)
        elif scope_type == "lifespan":
            self._checks = LifespanChecks(self)
        else:
            self._checks = None
        self._send: Callable[[int, str, dict[str, Any], Mapping[str, int] | None], None]
        self._receive: Callable[[int, str, dict[str, Any]], None]
        if self._checks is None:
            self._send, self._receive = _ignore_send, _ignore_receive
        else:
            self._send, self._receive = self._checks.send, self._checks.receive

    # Public API --------------------------------------------------------------------------------

    def feed(
        self,
        index: int,
        direction: Direction,
        message: object,
        sizes: Mapping[str, int] | None = None,
    ) -> list[Violation]:
        """Check the message at ``index`` (``direction`` as the app saw it); return what it broke.

        ``sizes`` gives the original length of payload fields the recording cut (Spy's
        ``max_body``), so Content-Length is checked against what was really sent. The list
        returned for a clean message is shared and read-only; every violation is also
        appended to :attr:`violations`.
        """
        violations = self.violations
        before = len(violations)
        # A plain try (not contextlib.suppress, which costs a call per message): a value no check
        # foresaw keeps what was found so far and never stops the viewer.
        try:  # noqa: SIM105
            self._feed(index, direction, message, sizes)
        except Exception:
            pass
        if len(violations) == before:
            return _NO_VIOLATIONS
        return violations[before:]

    def finish(self, outcome: str) -> list[Violation]:
        """The connection ended with ``outcome``; return what only the end can tell.

        Nothing is reported for ``"open"``; the first other outcome is final.
        """
        violations = self.violations
        before = len(violations)
        try:  # noqa: SIM105
            self._finish(outcome)
        except Exception:  # pragma: no cover - as in feed
            pass
        return violations[before:] if len(violations) > before else _NO_VIOLATIONS

    # Dispatch ----------------------------------------------------------------------------------

    def _feed(self, index: int, direction: str, message: object, sizes: Mapping[str, int] | None) -> None:
        if direction != "send" and direction != "receive":
            return  # not an event of the app's: nothing to check
        if not isinstance(message, dict):
            self.report(
                "message.malformed", f"the {_verb(direction)} message is {show(message)}, not a dict", index
            )
            return
        kind = message.get("type", MISSING)
        if type(kind) is not str:
            if not isinstance(kind, str):
                what = "has no 'type'" if kind is MISSING else f"has a 'type' that is {show(kind)}"
                self.report("message.malformed", f"the {_verb(direction)} message {what}, not a str", index)
                return
            kind = str.__str__(kind)
        if direction == "send":
            self._send(index, kind, message, sizes)
        else:
            self._receive(index, kind, message)

    def _finish(self, outcome: str) -> None:
        if outcome == "open" or self.finished:
            return
        self.finished = True
        if self._checks is not None:
            self._checks.finish(outcome)

    # Reporting (the protocol checks' Reporter) -------------------------------------------------

    def report(self, rule: str, message: str, index: int | None) -> None:
        """Record that the event at ``index`` (None: no single event) broke ``rule``."""
        self.violations.append(Violation(rule, RULES[rule].severity, message, index))

    def report_once(self, rule: str, message: str, index: int | None) -> None:
        """Report a sequence rule, the first time only."""
        reported = self._reported
        if rule not in reported:
            reported.add(rule)
            self.report(rule, message, index)

    def report_unknown(self, index: int, kind: str, direction: str) -> None:
        """Report a message type that is not this scope's, in that direction."""
        scope = self.scope_type
        shown = show(kind)  # a junk type may be long
        if kind in (self._receive_types if direction == "send" else self._send_types):
            if direction == "send":
                text = f"{shown} is a message the server sends to the app, not one the app sends"
            else:
                text = f"{shown} is a message the app sends, not one it receives"
        else:
            owner = next((name for name, (s, r) in _TYPES.items() if kind in s or kind in r), None)
            if owner is not None and owner != scope:
                text = f"{shown} belongs to the {owner} protocol, not to a {scope} scope"
            else:
                text = f"{shown} is not a message type of the {scope} protocol or of a known extension"
        self.report("message.unknown-type", f"{_verb(direction)}: {text}", index)


def _ignore_send(index: int, kind: str, message: dict[str, Any], sizes: Mapping[str, int] | None) -> None:
    """Scope types the spec does not define: only the message's shape is checked."""


def _ignore_receive(index: int, kind: str, message: dict[str, Any]) -> None:
    pass


def _verb(direction: str) -> str:
    return "sent" if direction == "send" else "received"


#: ``(direction, message)``, or ``(direction, message, {field: original size} or None)``
CheckedEvent = tuple[str, object] | tuple[str, object, Mapping[str, int] | None]


def check_events(
    scope_type: str,
    method: str | None,
    events: Iterable[CheckedEvent],
    outcome: str,
) -> list[Violation]:
    """Check a whole connection: ``(direction, message)`` pairs in order, and how it ended.

    An event may carry a third item, the ``{field: original size}`` of payloads the recording
    cut (as Spy's records and the store's events keep it).
    """
    checker = Checker(scope_type, method)
    feed = checker.feed
    for index, event in enumerate(events):
        sizes = event[2] if len(event) == 3 else None
        feed(index, cast(Direction, event[0]), event[1], sizes)
    checker.finish(outcome)
    return checker.violations
