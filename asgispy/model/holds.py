"""Time asgispy itself held a connection at a breakpoint, told apart from the app's time.

Each hold is an intervention with ``held`` (its seconds) and ``t`` (when it ended, seconds from
the connection's start; see asgispy.intercept.journal), so that the timing views can leave out
of a time the holds that ended before it: a paused request must not look like a slow app.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["app_time", "held_seconds", "hold_intervals"]


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _held(entry: Mapping[str, Any]) -> float:
    """An intervention's hold in seconds (0 for any other, or a value that is not a number)."""
    return max(0.0, _number(entry.get("held")))


def held_seconds(interventions: Iterable[Mapping[str, Any]]) -> float:
    """The seconds of every hold among ``interventions``."""
    return sum(_held(entry) for entry in interventions)


def app_time(interventions: list[dict[str, Any]], t: float | None) -> float | None:
    """``t`` less the holds that had ended by then (``t`` itself when there were none)."""
    if t is None or not interventions:
        return t
    held = sum(_held(e) for e in interventions if _number(e.get("t")) <= t + 1e-9)
    return max(0.0, t - held)


def hold_intervals(interventions: Iterable[Mapping[str, Any]]) -> list[tuple[float, float]]:
    """Each hold as ``(start, end)`` in seconds from the connection's start."""
    found = []
    for entry in interventions:
        held, stop = _held(entry), entry.get("t")
        if held > 0 and isinstance(stop, (int, float)) and not isinstance(stop, bool):
            found.append((float(stop) - held, float(stop)))
    return found
