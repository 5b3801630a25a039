"""``asgispy check --format github``: the check as GitHub Actions workflow commands.

Printed in a workflow step, each ``::error``/``::warning``/``::notice`` line becomes an
annotation on the run (and on the session file, at the connection's line, when the file is in
the repository). Values are escaped as the runner reads them: ``%``, CR and LF in the message;
also ``:`` and ``,`` in properties. The last line is a plain summary.
"""

from __future__ import annotations

from collections.abc import Mapping

from asgispy.exports.checkreport import CheckResult, connection_label, in_workspace, place, tally

__all__ = ["COMMANDS", "escape_data", "escape_property", "summary", "workflow_commands"]

#: asgispy's severities as workflow commands.
COMMANDS = {"error": "error", "warning": "warning", "notice": "notice"}


def workflow_commands(
    result: CheckResult, session: str | None = None, lines: Mapping[str, int] | None = None
) -> str:
    """One workflow command per shown violation, then the summary line."""
    path = _relative(session) if session is not None else None
    out = []
    for found in result.shown:
        props = {}
        if path is not None:
            props["file"] = path
            props["line"] = str((lines or {}).get(found.conn.id, 1))
        props["title"] = f"asgispy {found.rule}"
        where = place(found)
        message = f"{connection_label(found.conn)}: {found.message}" + (f"; at {where}" if where else "")
        joined = ",".join(f"{key}={escape_property(value)}" for key, value in props.items())
        out.append(f"::{COMMANDS.get(found.severity, 'warning')} {joined}::{escape_data(message)}")
    out.append(summary(result))
    return "\n".join(out) + "\n"


def summary(result: CheckResult) -> str:
    """``asgispy check: 12 connections checked: 1 error, 0 warnings, 2 notices``."""
    return f"asgispy check {'failed' if result.failed else 'passed'}: {tally(result)}"


def escape_data(text: str) -> str:
    """A workflow command's message: ``%``, CR and LF percent-encoded."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value: as a message, and ``:`` and ``,`` too."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _relative(path: str) -> str:
    """The session file relative to the working directory (the workspace, in a workflow)."""
    absolute, relative = in_workspace(path)
    return absolute if relative is None else relative
