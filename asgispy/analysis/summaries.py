"""Short texts for people from any value: scope values, byte counts, durations, counts.

The layer diff's words and the scope changes it records are made of these. They are apart
from the diff because they judge nothing, only show: each takes any value and never raises,
and the same summary must come out whether a value was seen live or read back from a file
(a recorded opaque object shows like the object it stands for).
"""

from __future__ import annotations

import re
from itertools import islice
from typing import Any

__all__ = ["clip", "format_duration", "format_size", "plural", "summarize"]

_LIMIT = 60  # longest value summary in words and scope summaries
_DEFAULT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")
_PATH_REPR = re.compile(r"\w+\(path='([^']*)'")


def summarize(value: Any) -> str:
    """A short, never-raising summary of any scope value for people.

    Plain data shows as its repr (clipped), containers a few items deep, routes by their path,
    other objects by their repr when it is short and says more than the default
    ``<x.Y object at 0x…>``, else by ``<TypeName>``. A recorded opaque object (type name and
    repr, as a session file keeps it) is shown like the object it stands for.
    """
    try:
        return clip(_summary(value, 0))
    except Exception:
        return f"<{type(value).__name__}>"


def _summary(value: Any, depth: int) -> str:
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    if isinstance(value, str):
        return repr(value[:_LIMIT]) + ("…" if len(value) > _LIMIT else "")
    if isinstance(value, (bytes, bytearray)):
        return repr(bytes(value[:_LIMIT])) + ("…" if len(value) > _LIMIT else "")
    if isinstance(value, dict):
        if depth >= 2:
            return "{…}" if value else "{}"
        pairs = islice(value.items(), 4)
        parts = [f"{_summary(k, depth + 1)}: {_summary(v, depth + 1)}" for k, v in pairs]
        return "{" + ", ".join(parts) + (", …" if len(value) > 4 else "") + "}"
    if isinstance(value, (list, tuple, set, frozenset)):
        if isinstance(value, tuple):
            opening, closing = "(", ")"
        elif isinstance(value, (set, frozenset)):
            opening, closing = "{", "}"
        else:
            opening, closing = "[", "]"
        if depth >= 2:
            return f"{opening}…{closing}" if value else f"{opening}{closing}"
        parts = [_summary(v, depth + 1) for v in islice(value, 4)]
        if len(value) > 4:
            parts.append("…")
        elif isinstance(value, tuple) and len(value) == 1:
            parts[0] += ","
        return opening + ", ".join(parts) + closing
    return _object_summary(value)


def _object_summary(value: Any) -> str:
    name = type(value).__name__
    try:
        if name == "Opaque" and isinstance(getattr(value, "repr", None), str):
            name = str(getattr(value, "type", name)).rpartition(".")[2]
            text = str(value.repr)
        elif isinstance(getattr(value, "path_format", None), str):  # a route: Starlette, FastAPI
            path = getattr(value, "path", None)
            return path if isinstance(path, str) else str(value.path_format)
        else:
            text = repr(value)
    except Exception:  # a broken __repr__ or property
        return f"<{name}>"
    match = _PATH_REPR.match(text)
    if match:
        return match.group(1)
    if len(text) > _LIMIT or _DEFAULT_REPR.fullmatch(text):
        return f"<{name}>"
    return text


def format_size(n: int) -> str:
    """Bytes for people: ``812 B``, ``5.0 KiB``, ``3.2 MiB``."""
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / (1024 * 1024):.1f} MiB"


def format_duration(seconds: float) -> str:
    """Seconds for people, one decimal: ``850.0 µs``, ``812.0 ms``, ``1.5 s``."""
    if round(seconds * 1e6, 1) < 1000:
        return f"{seconds * 1e6:.1f} µs"
    if round(seconds * 1e3, 1) < 1000:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.1f} s"


def clip(text: str, limit: int = _LIMIT) -> str:
    """``text``, cut to ``limit`` characters with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plural(n: int, noun: str) -> str:
    """``1 frame``, ``3 frames``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
