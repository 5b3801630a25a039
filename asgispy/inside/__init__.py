"""What the app did inside each connection: its outgoing HTTP calls, its log records and its
SQL statements, attached to the connection that caused them.

``Spy(app, inside=True)`` installs hooks (``logging`` handler, HTTP clients' ``send``, the
SQLAlchemy engine's events) only for what is asked, shared by every Spy of the process and
removed when the last one closes (:mod:`asgispy.inside.hooks`). A hook finds its connection
through the context the work runs in (``asgispy.capture.layers.current_record``), which
asyncio tasks and thread pools (``run_in_threadpool``, ``asyncio.to_thread``) inherit: work is
attached to the connection that caused it, and to no other. Off, none of this is imported.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["KINDS", "parse_kinds"]

#: what can be recorded inside a connection
KINDS = ("http", "logging", "sql")


def parse_kinds(value: bool | str | Iterable[str]) -> frozenset[str]:
    """``True``, ``"all"``, ``"http,sql"`` or ``("http", "sql")`` as a set of kinds
    (ValueError naming the known ones for anything else); ``False`` or empty: none."""
    if value is True:
        return frozenset(KINDS)
    if value is False or value is None:
        return frozenset()
    names = value.split(",") if isinstance(value, str) else list(value)
    kinds = {n.strip().lower() for n in names if n.strip()}
    if "all" in kinds:
        return frozenset(KINDS)
    if "log" in kinds or "logs" in kinds:
        kinds -= {"log", "logs"}
        kinds.add("logging")
    unknown = sorted(kinds - set(KINDS))
    if unknown:
        raise ValueError(f"inside: unknown {', '.join(unknown)} (known: {', '.join(KINDS)}, all)")
    return frozenset(kinds)
