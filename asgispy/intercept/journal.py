"""What asgispy did to a connection, written on its record so that every view can show it.

Each entry is a small dict: ``t`` (seconds since the connection began, like events), ``by``
(the rule or addon), ``what`` it did in a few words, and for a hook that raised, ``error`` and
``traceback``. The record keeps a bounded number; more are counted.
"""

from __future__ import annotations

import traceback
from time import perf_counter
from typing import Any

from asgispy.capture.layers import current_record

__all__ = ["Journal"]


class Journal:
    """Writes interventions on the record of the connection being served (if Spy records it)."""

    __slots__ = ("_record",)

    def __init__(self) -> None:
        self._record = current_record.get()

    def add(self, by: str, what: str, **extra: Any) -> None:
        record = self._record
        if record is None:
            return
        entry = {"t": perf_counter() - record.t0, "by": by, "what": what}
        entry.update(extra)
        record.intervened(entry)

    def failed(self, by: str, hook: str, exc: BaseException) -> None:
        """A hook raised: what and where, so the user sees it; the exchange went on without it."""
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        self.add(
            by,
            f"{hook} hook raised {type(exc).__name__}: {exc}"[:300],
            error=repr(exc)[:300],
            traceback=text[-4000:],
        )
