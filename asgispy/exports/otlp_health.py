"""What the live OTLP forwarder tells the user about its endpoint: little, and once.

A dead or slow endpoint would otherwise print a line per dropped span into a recording's
terminal. :class:`EndpointHealth` keeps whether the endpoint answers and says so only when
that changes (with how many spans were dropped meanwhile), and once when spans end faster
than the endpoint takes them. The forwarder calls it under its own lock, so it takes none.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from asgispy.exports.otlp_endpoint import explain

__all__ = ["EndpointHealth"]

logger = logging.getLogger("asgispy")


class EndpointHealth:
    """Whether ``url`` answers, and the warnings that go with a change; through ``warn`` when
    given, else the "asgispy" logger."""

    def __init__(self, url: str, warn: Callable[[str], None] | None = None) -> None:
        self.url = url
        self.down = False
        self._warn = warn
        self._behind_warned = False
        self._dropped_while_down = 0

    def queue_full(self, sent: int) -> None:
        """A connection was dropped because the queue was full (``sent`` spans went out so far)."""
        if self.down:
            self._dropped_while_down += 1
        elif sent and not self._behind_warned:  # (before any answer, it may be down)
            self._behind_warned = True
            self.say(
                f"otlp: {self.url} takes spans slower than connections end; "
                "dropping some (the session file keeps them all)"
            )

    def exported(self, ok: bool, count: int, reason: str | None) -> str | None:
        """An export of ``count`` spans went through (``ok``) or failed for ``reason``; the
        warning to give when that changed whether the endpoint answers, else None."""
        if ok:
            if not self.down:
                return None
            self.down = False
            return (
                f"otlp: spans reach {self.url} again "
                f"({self._dropped_while_down} dropped while it did not answer)"
            )
        message = None
        if not self.down:
            self.down = True
            self._dropped_while_down = 0
            why = explain(reason or "no answer", self.url)
            message = (
                f"otlp: cannot send spans to {self.url}: {why}; "
                "dropping them until it answers (the session file keeps everything)"
            )
        self._dropped_while_down += count
        return message

    def say(self, message: str) -> None:
        """Give ``message`` to the user; a failing ``warn`` callback is logged, never raised."""
        try:
            if self._warn is not None:
                self._warn(message)
            else:
                logger.warning("%s", message)
        except Exception:
            logger.debug("otlp: the warning callback failed", exc_info=True)
