"""SQL statements run while serving a connection: SQLAlchemy's engine events, listened to on the
``Engine`` class, so every engine of the process (sync, and async ones, whose work runs on a
sync engine underneath) reports without the app changing a line.

Parameters are user data: recorded only when asked (``--inside-sql-params``). The standard
library's ``sqlite3`` has no process-wide hook (its trace callback is per connection, set by
whoever opened it), so it is not recorded unless used through SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter
from typing import Any

from asgispy.capture.layers import current_record

__all__ = ["install"]

_STARTED = "asgispy_started"
#: the listeners installed now, by event name (empty when none: how a test sees them gone)
listening: dict[str, Callable[..., None]] = {}


def _rows(cursor: Any) -> int | None:
    try:
        count = cursor.rowcount
    except Exception:
        return None
    return count if isinstance(count, int) and count >= 0 else None


def install() -> Callable[[], None] | None:
    try:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine
    except ImportError:
        return None

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        record = current_record.get()
        options = record.inside_options if record is not None else None
        if options is None or "sql" not in options.kinds:
            return
        conn.info.setdefault(_STARTED, []).append(perf_counter())

    def entry(conn: Any, statement: str, parameters: Any, many: bool) -> dict[str, Any] | None:
        record = current_record.get()
        started = conn.info.get(_STARTED)
        if record is None or not started or record.inside_options is None:
            return None
        t0 = started.pop()
        doc: dict[str, Any] = {
            "kind": "sql",
            "t": t0 - record.t0,
            "statement": str(statement)[:20000],
            "duration": perf_counter() - t0,
            "rows": None,
            "many": bool(many),
            "database": conn.engine.dialect.name,
            "error": None,
        }
        if record.inside_options.sql_params:
            doc["parameters"] = _plain(parameters)
        record.did(doc)
        return doc

    def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        try:
            doc = entry(conn, statement, parameters, many)
            if doc is not None:
                doc["rows"] = _rows(cursor)
        except Exception:
            pass  # recording must never change what the query did

    def failed(context: Any) -> None:
        try:
            conn = context.connection
            if conn is None:
                return
            doc = entry(conn, context.statement or "", context.parameters, False)
            if doc is not None:
                exc = context.original_exception
                doc["error"] = f"{type(exc).__name__}: {exc}"[:1000]
        except Exception:
            pass

    listening.update(before_cursor_execute=before, after_cursor_execute=after, handle_error=failed)
    for name, listener in listening.items():
        event.listen(Engine, name, listener)

    def remove() -> None:
        for name, listener in listening.items():
            event.remove(Engine, name, listener)
        listening.clear()

    return remove


def _plain(value: Any, depth: int = 0) -> Any:
    """Parameters as plain data the codec keeps (anything else by its repr)."""
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if depth > 4:
        return repr(value)[:200]
    if isinstance(value, dict):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_plain(v, depth + 1) for v in value)
    if isinstance(value, list):
        return [_plain(v, depth + 1) for v in value]
    return repr(value)[:200]
