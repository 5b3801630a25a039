"""Log records emitted while serving a connection: one ``logging.Handler`` on the root logger.

It sees what the app's loggers let through (their own levels and ``propagate`` decide, as for
any handler), keeps those at or above the Spy's level (default INFO) on the connection they
were emitted in, and does nothing for a record emitted outside any connection. It never
formats with the app's formatters: the message is ``getMessage()``, the exception its
traceback as text.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from time import perf_counter

from asgispy.capture.layers import current_record

__all__ = ["install", "lower_level"]

_handler: _InsideHandler | None = None


class _InsideHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        conn = current_record.get()
        if conn is None:
            return
        options = conn.inside_options
        if options is None or "logging" not in options.kinds or record.levelno < options.level:
            return
        if record.name == "asgispy" or record.name.startswith("asgispy."):
            return  # asgispy's own complaints are the connection's notes, not the app's logs
        try:
            message = record.getMessage()
        except Exception as exc:  # a format string and arguments that do not match
            message = f"{record.msg!r} (could not be formatted: {exc!r})"
        exception = None
        if record.exc_info and record.exc_info[1] is not None:
            exception = "".join(traceback.format_exception(*record.exc_info))[-8000:]
        conn.did(
            {
                "kind": "log",
                "t": perf_counter() - conn.t0,
                "level": record.levelname,
                "levelno": record.levelno,
                "logger": record.name,
                "message": message[:4000],
                "where": f"{record.pathname}:{record.lineno}",
                "exception": exception,
            }
        )

    def handleError(self, record: logging.LogRecord) -> None:
        pass  # never print asgispy's trouble into the app's stderr through logging's own path


def install(level: int) -> Callable[[], None]:
    global _handler
    _handler = _InsideHandler(level)
    logging.getLogger().addHandler(_handler)

    def remove() -> None:
        global _handler
        if _handler is not None:
            logging.getLogger().removeHandler(_handler)
            _handler = None

    return remove


def lower_level(level: int) -> None:
    """Another Spy asks for records from ``level``: the shared handler lets them through."""
    if _handler is not None and level < _handler.level:
        _handler.setLevel(level)
