"""What a viewer may ask of an app's interception, and what the app tells it back.

A viewer (the dashboard, the MCP server) sends small dicts over the wire's control frames; the
producer's thread hands each to :meth:`Control.handle`. Only an app that opted in
(``Spy(app, intercept=True)``, or ``asgispy run``) has a Control at all: a viewer attached to
any other app can change nothing. When the viewer goes away, its breakpoints go with it and
every connection it held resumes unchanged.

Requests (``kind``):

- ``breakpoints``: ``points``, a list of ``{"expression", "phase"}``: replaces the viewer's set.
- ``decide``: ``id`` (a held connection), ``action`` (resume, answer, drop), ``edits``.
- ``rule``: ``index`` and ``enabled``: turns a rule on or off.
- ``gone``: the viewer went away (sent by the producer itself when its link drops).

Reports (``kind``): ``held`` (``held``: the held connection's document), ``released`` (``id``),
``state`` (the rules and breakpoints, sent on request and after each change).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from asgispy.codec.redact import Redactor
from asgispy.filter.grammar import FilterError
from asgispy.intercept.breakpoints import Decision, Held

if TYPE_CHECKING:
    from asgispy.intercept.engine import Intercept

__all__ = ["Control"]

logger = logging.getLogger("asgispy")

Report = Callable[[dict[str, Any]], None]


class Control:
    """The viewer's handle on one app's interception (its requests may come from any thread)."""

    def __init__(
        self, engine: Intercept, report: Report | None = None, redactor: Redactor | None = None
    ) -> None:
        self.engine = engine
        self.report: Report = report or (lambda message: None)
        #: secret header values are masked in what leaves the process (the Spy's redactor)
        self.redactor = redactor if redactor is not None else Redactor()
        engine.breakpoints.watchers.append(self._watch)

    def _watch(self, what: str, held: Held) -> None:
        if what == "held":
            self.report({"kind": "held", "held": held.document(self.redactor)})
        else:
            self.report({"kind": "released", "id": held.id})

    def state(self) -> dict[str, Any]:
        """The rules and breakpoints as a viewer lists them, and what is held now."""
        engine = self.engine
        return {
            "kind": "state",
            "rules": [
                {"index": r.index, "label": r.label, "does": r.describe(), "enabled": r.enabled}
                for r in engine.rules
            ],
            "addons": [a.name for a in engine.addons],
            "breakpoints": [p.document() for p in engine.breakpoints.points],
            "held": [h.document(self.redactor) for h in list(engine.breakpoints.held.values())],
            "timeout": engine.breakpoints.timeout,
        }

    def handle(self, message: dict[str, Any]) -> None:
        """Apply one request; a bad one is logged and answered with an ``error`` report."""
        try:
            self._apply(message)
        except (KeyError, TypeError, ValueError, IndexError, FilterError) as exc:
            logger.warning("asgispy: a viewer's request %r was refused: %s", message.get("kind"), exc)
            self.report({"kind": "error", "request": message.get("kind"), "error": str(exc)})

    def _apply(self, message: dict[str, Any]) -> None:
        kind = message.get("kind")
        points = self.engine.breakpoints
        if kind == "breakpoints":
            wanted = [
                (str(p["expression"]), str(p.get("phase", "request"))) for p in message.get("points", ())
            ]
            points.clear()
            for expression, phase in wanted:
                points.add(expression, phase)
            for held in list(points.held.values()):  # its breakpoint is gone: it goes on
                if (held.point.expression, held.point.phase) not in wanted:
                    held.decide(Decision("unset"))
            if "timeout" in message:
                points.timeout = max(0.1, float(message["timeout"]))
            self.report(self.state())
        elif kind == "decide":
            decision = Decision(str(message["action"]), dict(message.get("edits") or {}))
            if decision.action not in ("resume", "answer", "drop"):
                raise ValueError(
                    f"a held connection is resumed, answered or dropped, not {decision.action!r}"
                )
            if not points.decide(str(message["id"]), decision):
                raise ValueError(f"connection {message['id']} is not held")
        elif kind == "rule":
            self.engine.rules.toggle(int(message["index"]), bool(message.get("enabled", True)))
            self.report(self.state())
        elif kind == "state":
            self.report(self.state())
        elif kind == "gone":
            points.clear()
            points.release_all()
        else:
            raise ValueError(f"unknown request {kind!r}")
