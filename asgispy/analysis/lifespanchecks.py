"""The lifespan rules of the protocol checker: each phase asked once and answered once.

:class:`LifespanChecks` follows a ``lifespan`` scope for a
:class:`~asgispy.analysis.checker.Checker`, which hands it every well-formed message. It is
apart from the core because it is a protocol of its own, with its own state: which phases the
server began and how the app answered each (the answer and the event it was).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from asgispy.analysis.fieldchecks import Reporter

__all__ = ["LifespanChecks"]

_LIFESPAN_SEND = frozenset(
    {
        "lifespan.startup.complete",
        "lifespan.startup.failed",
        "lifespan.shutdown.complete",
        "lifespan.shutdown.failed",
    }
)
_LIFESPAN_RECEIVE = frozenset({"lifespan.startup", "lifespan.shutdown"})


class LifespanChecks:
    """Checks one lifespan connection's messages."""

    #: the message types the app sends and receives in a ``lifespan`` scope
    sends: ClassVar[frozenset[str]] = _LIFESPAN_SEND
    receives: ClassVar[frozenset[str]] = _LIFESPAN_RECEIVE

    __slots__ = (
        "_got_shutdown",
        "_got_startup",
        "_reporter",
        "_shutdown_answer",
        "_startup_answer",
    )

    def __init__(self, reporter: Reporter) -> None:
        self._reporter = reporter
        self._got_startup = False
        self._got_shutdown = False
        #: (the answer's type, its event index), once sent
        self._startup_answer: tuple[str, int] | None = None
        self._shutdown_answer: tuple[str, int] | None = None

    def receive(self, index: int, kind: str, message: dict[str, Any]) -> None:
        """The server beginning a phase; answering it before that is out of order."""
        if kind == "lifespan.startup":
            self._got_startup = True
        elif kind == "lifespan.shutdown":
            self._got_shutdown = True
        else:
            self._reporter.report_unknown(index, kind, "receive")
            return
        answer = self._startup_answer
        if answer is not None and answer[0] == "lifespan.startup.failed":
            self._reporter.report_once(
                "lifespan.served-after-failure",
                f"the app received {kind!r} after it sent 'lifespan.startup.failed' (event {answer[1]}); "
                "the server should have exited",
                index,
            )

    def send(self, index: int, kind: str, message: dict[str, Any], sizes: Mapping[str, int] | None) -> None:
        """The app's answer to a phase: once each, and only after the phase began."""
        if kind not in _LIFESPAN_SEND:
            self._reporter.report_unknown(index, kind, "send")
            return
        startup = kind.startswith("lifespan.startup.")
        phase = "lifespan.startup" if startup else "lifespan.shutdown"
        answer = self._startup_answer if startup else self._shutdown_answer
        if answer is not None:
            self._reporter.report(
                "lifespan.startup-twice" if startup else "lifespan.shutdown-twice",
                f"{kind!r} after {answer[0]!r} (event {answer[1]}): {phase!r} is answered once",
                index,
            )
            return
        if not (self._got_startup if startup else self._got_shutdown):
            self._reporter.report(
                "lifespan.out-of-order", f"{kind!r} was sent before the app received {phase!r}", index
            )
        if startup:
            self._startup_answer = (kind, index)
        else:
            self._shutdown_answer = (kind, index)

    def finish(self, outcome: str) -> None:
        """No lifespan rule waits for the end: an app without lifespan support may just return."""
