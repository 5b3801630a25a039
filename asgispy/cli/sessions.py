"""Reading the session a command works on: load it, apply ``--filter``, say clearly what failed."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from asgispy.model.connection import Connection
    from asgispy.model.session import Session

__all__ = ["CommandError", "filtered_connections", "filtered_session"]


class CommandError(Exception):
    """A session that cannot be read, or a filter that cannot be understood: exit status 2."""


def filtered_connections(command: str, path: str, expression: str | None) -> list[Connection]:
    """The connections of the session at ``path`` that ``expression`` shows (all without one).

    Prints the reason and raises :class:`CommandError` when the file or the filter is wrong.
    """
    return filtered_session(command, path, expression).connections


def filtered_session(command: str, path: str, expression: str | None) -> Session:
    """The session at ``path`` with only the connections ``expression`` shows (and their producers);
    ``@name`` in it is a saved filter (asgispy.filter.saved)."""
    from asgispy.codec.sessionfile import SessionFileError
    from asgispy.filter.grammar import FilterError
    from asgispy.filter.saved import parse_with_saved
    from asgispy.store.load import load

    try:
        session = load(path)
    except (OSError, SessionFileError) as exc:
        print(f"asgispy {command}: {exc}", file=sys.stderr)
        raise CommandError from exc
    if not expression:
        return session
    try:
        session.connections = parse_with_saved(expression).select(session.connections)
    except FilterError as exc:
        print(f"asgispy {command}: --filter: {exc}", file=sys.stderr)
        raise CommandError from exc
    tags = {c.producer for c in session.connections}
    session.producers = {t: p for t, p in session.producers.items() if t in tags}
    return session
