"""How a field's value compares: text as a glob or substring, numbers with units and ranges.

The fields say what they read of a connection; this is the small arithmetic of the values
typed after their ``:`` (``>=400``, ``4xx``, ``100ms-2s``, ``>10k``, ``/api/*``), apart so
every field reads its value the same way.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable

__all__ = ["UNITS_SIZE", "UNITS_TIME", "comparison", "text_matcher"]


def text_matcher(pattern: str) -> Callable[[str], bool]:
    """Glob (``*``, ``?``, ``[...]``) matching the whole value, else a substring; case-insensitive."""
    if any(c in pattern for c in "*?["):
        regex = re.compile(fnmatch.translate(pattern), re.IGNORECASE | re.DOTALL)
        return lambda value: regex.match(value) is not None
    needle = pattern.lower()
    return lambda value: needle in value.lower()


_COMPARE = re.compile(r"(>=|<=|>|<|=)?(.+)")
UNITS_TIME = {"": 1e-3, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0}
UNITS_SIZE = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "gib": 1024**3,
}
_QUANTITY = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([a-zµ]*)", re.IGNORECASE)


def _number(text: str, units: dict[str, float] | None) -> float | None:
    match = _QUANTITY.fullmatch(text.strip())
    if match is None:
        return None
    unit = match.group(2).lower()
    if units is None:
        return float(match.group(1)) if not unit else None
    if unit not in units:
        return None
    return float(match.group(1)) * units[unit]


def comparison(value: str, units: dict[str, float] | None) -> Callable[[float], bool] | None:
    """``>=400``, ``<1s``, ``=3``, ``200-299``, ``100ms-2s``; comma-separated alternatives."""
    tests: list[Callable[[float], bool]] = []
    for part in value.split(","):
        part = part.strip()
        test = _one_comparison(part, units)
        if test is None:
            return None
        tests.append(test)
    if len(tests) == 1:
        return tests[0]
    return lambda v: any(t(v) for t in tests)


def _one_comparison(part: str, units: dict[str, float] | None) -> Callable[[float], bool] | None:
    if units is None and re.fullmatch(r"[1-9][xX]{2}", part):  # status classes: 4xx
        hundreds = int(part[0]) * 100
        return lambda v: hundreds <= v < hundreds + 100
    match = _COMPARE.fullmatch(part)
    if match is None:
        return None
    op, rest = match.group(1), match.group(2)
    if op is None and "-" in rest:
        low_text, _, high_text = rest.partition("-")
        low, high = _number(low_text, units), _number(high_text, units)
        if low is None or high is None or high < low:
            return None
        return lambda v: low <= v <= high
    x = _number(rest, units)
    if x is None:
        return None
    if op == ">":
        return lambda v: v > x
    if op == ">=":
        return lambda v: v >= x
    if op == "<":
        return lambda v: v < x
    if op == "<=":
        return lambda v: v <= x
    return lambda v: v == x
