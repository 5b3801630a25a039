"""The statistics screen's plots: one route's latency histogram, and requests and errors over time.

Drawn with textual-plotext. Each plot is given its data whole and redraws only when that data
changed, so a refresh with nothing new costs nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from textual_plotext import PlotextPlot

from asgispy.analysis.stats import Bucket, GroupStats

__all__ = ["LatencyPlot", "TrafficPlot"]

#: bars of the latency histogram
BINS = 20


class LatencyPlot(PlotextPlot):
    """How the HTTP durations of one group spread, in milliseconds."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown: tuple[str, int, int] | None = None
        #: what the plot's title says (for people, and for the tests that read it)
        self.title = ""

    def show(self, group: GroupStats | None) -> None:
        durations = group.durations if group is not None else []
        # A new duration changes the count, and the errors count covers a failure that did not
        # add one; the same group with neither is the same plot.
        shown = (group.key, len(durations), group.errors) if group is not None else None
        if shown == self._shown:
            return
        self._shown = shown
        plt: Any = self.plt
        plt.clear_data()
        if group is None:
            self.title = "latency: no route selected"
        elif not durations:
            self.title = f"{group.key}: no durations (yet)"
        else:
            self.title = f"{group.key}: {len(durations)} durations, ms"
            values = [d * 1000 for d in durations]
            plt.hist(values, bins=BINS, color="cyan")
            plt.yticks(count_ticks(max(_bin_counts(values, BINS))))
            plt.xlim(0, max(values) * 1.03)  # a duration is never negative: no axis below 0 ms
        plt.title(self.title)
        plt.xlabel("ms")
        plt.ylabel("requests")
        self.refresh()


class TrafficPlot(PlotextPlot):
    """Requests and errors per time bucket, by the clock time each bucket began."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown: list[Bucket] | None = None
        self.title = ""

    def show(self, buckets: Sequence[Bucket]) -> None:
        if self._shown == list(buckets):
            return
        self._shown = list(buckets)
        plt: Any = self.plt
        plt.clear_data()
        if not buckets:
            self.title = "requests over time: none yet"
        else:
            width = buckets[0].width
            requests = sum(b.requests for b in buckets)
            errors = sum(b.errors for b in buckets)
            self.title = f"{requests} requests, {errors} errors, per {_width(width)}"
            x = list(range(len(buckets)))
            plt.plot(x, [b.requests for b in buckets], label="requests", color="green", marker="braille")
            plt.plot(x, [b.errors for b in buckets], label="errors", color="red", marker="braille")
            plt.yticks(count_ticks(max(b.requests for b in buckets)))
            step = max(1, len(buckets) // 5)
            ticks = x[::step]
            plt.xticks(ticks, [_clock(buckets[i].start, width) for i in ticks])
        plt.title(self.title)
        self.refresh()


def _width(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:g} s"
    if seconds < 3600:
        return f"{seconds / 60:g} min"
    return f"{seconds / 3600:g} h"


def _clock(t: float, width: float) -> str:
    """A bucket's start as a local clock time, to the second (or tenth) its width needs."""
    local = time.localtime(t)
    text = time.strftime("%H:%M:%S" if width < 3600 else "%d %H:%M", local)
    if width < 1:
        text += f".{int(t * 10) % 10}"
    return text


def count_ticks(top: int) -> list[int]:
    """Whole-number ticks from 0 to at least ``top`` a step of 1, 2 or 5 times ten apart, a handful
    of them: a count is never 2.5, so an axis of counts shows none."""
    scale = 1
    while True:
        for step in (scale, 2 * scale, 5 * scale):
            if top // step <= 6:
                return list(range(0, top + step, step))
        scale *= 10


def _bin_counts(values: Sequence[float], bins: int) -> list[int]:
    # The tallest bar decides the ticks: the same equal-width bins the histogram draws.
    low, high = min(values), max(values)
    width = (high - low) / bins or 1.0
    counts = [0] * bins
    for value in values:
        counts[min(int((value - low) / width), bins - 1)] += 1
    return counts
