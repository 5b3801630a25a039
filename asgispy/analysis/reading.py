"""Readers that never raise, for values that may be anything.

The layer diff reads the messages and scopes the app saw, and :mod:`asgispy.analysis.layerchanges`
reads documents back from a session file; neither may trust a value's type. These take any
value and return the plain one asked for, or an empty or None answer, so that the code that
uses them states what it compares and not how it survives junk.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "as_bytes",
    "finite_float",
    "header_pairs",
    "nonempty_str",
    "plain_int",
    "rows",
    "scope_get",
    "scope_items",
    "str_rows",
]

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def header_pairs(raw: Any) -> list[tuple[str, str]]:
    """Header pairs as (lower-case name, value), latin-1 text; what is not a pair is skipped."""
    items: Iterable[Any]
    if isinstance(raw, (list, tuple)):
        items = raw
    elif isinstance(raw, dict):
        items = raw.items()
    else:
        return []
    pairs = []
    for item in items:
        if isinstance(item, (list, tuple)) and len(item) == 2:
            name, value = _latin1(item[0]), _latin1(item[1])
            if name is not None and value is not None:
                pairs.append((name.translate(_ASCII_LOWER), value))
    return pairs


def _latin1(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin-1")
    return None


def as_bytes(value: Any) -> bytes:
    """Bytes as they are, text as UTF-8, anything else as no bytes."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        try:
            return bytes(value)
        except ValueError:  # a released memoryview
            return b""
    if isinstance(value, str):
        return value.encode("utf-8", "replace")
    return b""


def scope_items(scope: Mapping[str, Any]) -> dict[Any, Any]:
    """A copy of the scope's items; empty when the mapping refuses to give them."""
    try:
        return dict(scope.items())
    except Exception:
        return {}


def scope_get(scope: Mapping[str, Any], key: str) -> Any:
    """``scope[key]``, or None when it is missing or the mapping raises."""
    try:
        return scope.get(key)
    except Exception:
        return None


def finite_float(value: Any) -> float | None:
    """A finite number of seconds, or None."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def plain_int(value: Any) -> int | None:
    """An int that is not a bool, or None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def nonempty_str(value: Any) -> str | None:
    """A str with something in it, or None."""
    return value if isinstance(value, str) and value else None


def rows(value: Any, width: int) -> list[list[Any]]:
    """The lists of ``width`` items in a document's list of rows."""
    if not isinstance(value, list):
        return []
    return [r for r in value if isinstance(r, list) and len(r) == width]


def str_rows(value: Any, width: int) -> list[list[str]]:
    """The rows of ``width`` strings."""
    return [r for r in rows(value, width) if all(type(v) is str for v in r)]
