"""The sender thread's body and the last flush at exit, apart from the Producer's work.

The thread holds its producer only weakly, and only while working: a Spy that is dropped takes
its sender along. A bug of ours in one round is logged and the thread goes on: streaming must
not end for the life of the process. At exit, a producer still streaming gets a moment to send
the app's last news (a server that shuts down cleanly records its lifespan shutdown last).
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from typing import Any, Protocol

from asgispy.capture.origin import fork_generation
from asgispy.wire.channel import MAX_BACKOFF

__all__ = ["live", "run"]

logger = logging.getLogger("asgispy")


class Stepper(Protocol):
    """What the thread drives: a producer."""

    _closing: bool
    _streaming: bool
    _generation: int
    _wake: threading.Event

    def _step(self) -> float | None: ...

    def _disconnect(self) -> None: ...

    def flush(self, timeout: float = 1.0) -> bool: ...


#: every producer of this process, for the flush at exit
live: weakref.WeakSet[Any] = weakref.WeakSet()


def run(ref: weakref.ReferenceType[Any]) -> None:
    """The sender thread: one round of its producer's work, then wait for news."""
    while True:
        producer: Stepper | None = ref()
        if producer is None or producer._closing:
            if producer is not None:
                producer._disconnect()
            return
        try:
            wait = producer._step()
        except Exception:  # a bug of ours must not end streaming for the life of the process
            logger.exception("asgispy: the sender failed")
            wait = MAX_BACKOFF
        wake = producer._wake
        del producer
        if wait is None:
            continue
        wake.wait(wait)
        wake.clear()
        if ref() is None:
            return


@atexit.register
def _flush_at_exit() -> None:
    for producer in list(live):
        if producer._generation == fork_generation() and producer._streaming:
            producer.flush(0.5)
