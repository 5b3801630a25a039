"""The sender's pace: when the producer's thread looks for news, and when it must rest.

It may use a share of one CPU for sending, measured over a short window; past it, it rests,
and news is dropped and counted rather than the app slowed. Followed connections are looked
at less often when there are many, and while nothing is sent the collector is checked now
and then. These are clocks only, apart from the producer's loop, which asks them.
"""

from __future__ import annotations

import time

__all__ = ["CPU_SHARE", "IDLE_POLL", "POLL", "Pace"]

#: How often the thread looks for news: ended connections to pack, new connections, new
#: messages in the records it follows. The request path never wakes it (that would cost a
#: system call per connection).
POLL = 0.01
#: How often it packs when nobody listens (the history only needs to stay compact).
IDLE_POLL = 0.05
#: Followed connections looked at per POLL; past that many the sender looks less often.
FOLLOW_PER_POLL = 2000
#: How often an idle sender checks that its collector is still there.
IDLE_CHECK = 0.5
#: The share of one CPU the sender may use by default for sending (packing is not limited:
#: the history must stay compact). Past it the sender rests and news is dropped and counted.
CPU_SHARE = 0.1
#: The window over which the sender's CPU share is measured, in seconds.
CPU_WINDOW = 0.5


class Pace:
    """The sender thread's clocks, for a sender allowed ``cpu_share`` of one CPU."""

    def __init__(self, cpu_share: float) -> None:
        self.cpu_share = cpu_share
        self._window: tuple[float, float] | None = None  # (monotonic, thread CPU) at its start
        self._followed = 0.0
        self._checked = 0.0
        #: times the sender rested to stay within its CPU share
        self.rests = 0

    def rest(self) -> float:
        """Seconds to rest before working again, to keep within ``cpu_share`` (sender thread)."""
        now, cpu = time.monotonic(), time.thread_time()
        window = self._window
        if window is None or now - window[0] > CPU_WINDOW:
            self._window = (now, cpu)
            return 0.0
        started, cpu_at_start = window
        rest = (cpu - cpu_at_start) / self.cpu_share - (now - started)
        if rest > 0:
            self.rests += 1
        return rest

    def follow_due(self, following: int) -> bool:
        """Whether to look at the ``following`` connections followed now (less often when many)."""
        now = time.monotonic()
        if now - self._followed >= POLL * max(1.0, following / FOLLOW_PER_POLL):
            self._followed = now
            return True
        return False

    def check_due(self) -> bool:
        """Whether to check, with nothing to send, that the collector is still there."""
        now = time.monotonic()
        if now - self._checked > IDLE_CHECK:
            self._checked = now
            return True
        return False
