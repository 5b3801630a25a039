"""What ``asgispy check`` found, as plain values every report format is written from.

The protocol checker leaves its :class:`~asgispy.analysis.checker.Violation` objects on each
connection; a :class:`Finding` is one of them with the connection it belongs to, named the way
a CI report shows it (``GET /orders #c12``: the path without its query string, which may carry
secrets). The JSON report (``--format json``) is also here, since it is that list and the counts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asgispy.analysis.rules import SEVERITIES
from asgispy.version import __version__

if TYPE_CHECKING:
    from asgispy.analysis.checker import Violation
    from asgispy.model.connection import Connection

__all__ = [
    "CheckResult",
    "Finding",
    "check_document",
    "check_result",
    "connection_label",
    "connection_lines",
    "findings",
    "in_workspace",
    "place",
    "tally",
]

#: Where the tool is described (the SARIF driver's informationUri).
INFORMATION_URI = "https://pypi.org/project/asgispy/"


@dataclass(frozen=True, slots=True)
class Finding:
    """One broken rule on one connection."""

    conn: Connection
    violation: Violation

    @property
    def rule(self) -> str:
        return self.violation.rule

    @property
    def severity(self) -> str:
        return self.violation.severity

    @property
    def message(self) -> str:
        return self.violation.message


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The result of a check: every connection, what is shown, and what counts."""

    connections: Sequence[Connection]
    #: the findings at or above ``--show``, in connection order
    shown: list[Finding]
    #: all violations by severity, whatever was shown
    counts: dict[str, int]
    #: the severities that fail the check (``--fail-on`` and worse)
    failing: tuple[str, ...]

    @property
    def failed(self) -> bool:
        return any(self.counts[s] for s in self.failing)


def check_result(
    connections: Sequence[Connection], show: str = "notice", fail_on: str = "error"
) -> CheckResult:
    """Count every violation and keep those at or above ``show``."""
    order: tuple[str, ...] = SEVERITIES
    shown = order[: order.index(show) + 1]
    counts: dict[str, int] = dict.fromkeys(order, 0)
    kept = []
    for found in findings(connections):
        counts[found.severity] = counts.get(found.severity, 0) + 1
        if found.severity in shown:
            kept.append(found)
    failing = order[: order.index(fail_on) + 1]
    return CheckResult(connections, kept, counts, failing)


def findings(connections: Iterable[Connection]) -> list[Finding]:
    """Every violation of every connection, in order."""
    return [Finding(conn, v) for conn in connections for v in conn.violations]


def connection_label(conn: Connection) -> str:
    """``GET /orders #c12``, ``WS /chat #c3``, ``LIFESPAN #c1``: the connection as reports name it."""
    if conn.type == "http":
        return f"{conn.method or '?'} {conn.path} #{conn.id}"
    if conn.type == "websocket":
        return f"WS {conn.path} #{conn.id}"
    return f"{conn.type.upper()} #{conn.id}"


def tally(result: CheckResult) -> str:
    """``12 connections checked: 1 error, 0 warnings, 2 notices``: the last line of a report."""
    n = len(result.connections)
    words = ", ".join(f"{c} {s}{'s' if c != 1 else ''}" for s, c in result.counts.items())
    return f"{n} connection{'s' if n != 1 else ''} checked: {words}"


def place(found: Finding) -> str:
    """Which message was at fault: ``message 2 (send http.response.body)``, or ''."""
    index, events = found.violation.event, found.conn.events
    if index is None or not 0 <= index < len(events):
        return ""
    event = events[index]
    return f"message {index + 1} ({event.direction} {event.type})"


def connection_lines(text: str, ids: Iterable[str]) -> dict[str, int]:
    """The 1-based line of ``text`` (a session file) where each connection's document begins.

    A JSON session writes ``"id": "<id>"`` on the connection's own line, a JSON-lines event log
    ``"id":"<id>"`` in its opening record; an id not found is left out.
    """
    wanted = set(ids)
    lines: dict[str, int] = {}
    if not wanted:
        return lines
    pattern = re.compile(r'"id":\s?"((?:[^"\\]|\\.)*)"')
    for number, line in enumerate(text.splitlines(), start=1):
        for match in pattern.finditer(line):
            value = match.group(1)
            if value in wanted and value not in lines:
                lines[value] = number
        if len(lines) == len(wanted):
            break
    return lines


def check_document(result: CheckResult, session: str | None = None) -> dict[str, Any]:
    """The JSON report: the counts, and each shown violation with its connection."""
    return {
        "tool": {"name": "asgispy", "version": __version__},
        "session": session,
        "connections": len(result.connections),
        "counts": dict(result.counts),
        "fail_on": result.failing[-1],
        "failed": result.failed,
        "violations": [_violation_document(f) for f in result.shown],
    }


def _violation_document(found: Finding) -> dict[str, Any]:
    conn, index = found.conn, found.violation.event
    event = conn.events[index] if index is not None and 0 <= index < len(conn.events) else None
    return {
        "connection": conn.id,
        "type": conn.type,
        "method": conn.method,
        "path": conn.path,
        "route": conn.route,
        "status": conn.status,
        "rule": found.rule,
        "severity": found.severity,
        "message": found.message,
        "event": index,
        "event_type": event.type if event is not None else None,
        "direction": event.direction if event is not None else None,
    }


def in_workspace(path: str) -> tuple[str, str | None]:
    """The session file's absolute path, and its path relative to the working directory (the
    repository, in a CI workflow) when it lies under it, with ``/`` between parts; else None."""
    absolute = os.path.abspath(path)
    try:
        return absolute, Path(absolute).relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return absolute, None
