"""Reading the session a command works on: load it, apply ``--filter``, say clearly what failed."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from asgispy.store.model import Connection

__all__ = ["CommandError", "filtered_connections"]


class CommandError(Exception):
    """A session that cannot be read, or a filter that cannot be understood: exit status 2."""


def filtered_connections(command: str, path: str, expression: str | None) -> list[Connection]:
    """The connections of the session at ``path`` that ``expression`` shows (all without one).

    Prints the reason and raises :class:`CommandError` when the file or the filter is wrong.
    """
    import asgispy
    from asgispy.capture.sessionfile import SessionFileError
    from asgispy.store.filter import FilterError, parse

    try:
        connections = asgispy.load(path).connections
    except (OSError, SessionFileError) as exc:
        print(f"asgispy {command}: {exc}", file=sys.stderr)
        raise CommandError from exc
    if not expression:
        return connections
    try:
        return parse(expression).select(connections)
    except FilterError as exc:
        print(f"asgispy {command}: --filter: {exc}", file=sys.stderr)
        raise CommandError from exc
