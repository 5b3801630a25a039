"""The field checks HTTP and WebSocket messages share, and how a violation quotes a value.

``status``, ``body``, ``more_body`` and ``headers`` mean the same in an HTTP response and in a
WebSocket denial response, so both protocols' checks (:mod:`asgispy.analysis.httpchecks`,
:mod:`asgispy.analysis.websocketchecks`) call these. They are free functions that report
through the checker's ``report`` callable, so they keep no state and add no object per
message; each returns what the caller goes on with (the status, the body's length...).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Protocol, cast

__all__ = [
    "BYTES_LIKE",
    "MISSING",
    "Reporter",
    "check_body",
    "check_headers",
    "check_more",
    "check_status",
    "is_int",
    "show",
]


class Reporter(Protocol):
    """Where the protocol checks put what they find: the
    :class:`~asgispy.analysis.checker.Checker` that holds them."""

    def report(self, rule: str, message: str, index: int | None) -> None:
        """``rule`` was broken by the event at ``index`` (None: by no single event)."""

    def report_once(self, rule: str, message: str, index: int | None) -> None:
        """A sequence rule was broken: reported the first time only."""

    def report_unknown(self, index: int, kind: str, direction: str) -> None:
        """The message at ``index`` has a type that is not its protocol's, in that direction."""


BYTES_LIKE = (bytes, bytearray, memoryview)
#: What ``message.get(field, MISSING)`` returns for a field that is not there.
MISSING: Any = object()

_CONTROL = re.compile(rb"[\r\n\x00]")
_TEXT_TYPES = (str, bytes, bytearray)
_NUMBER_TYPES = (int, float, bool)
_CONTAINER_TYPES = (list, tuple, dict)


def _type_name(value: object) -> str:
    try:
        return type(value).__name__
    except Exception:  # pragma: no cover - a metaclass that refuses to name its class
        return "object"


def show(value: object, limit: int = 40) -> str:
    """A short, safe description: a cut repr for plain values, the type for anything else."""
    try:
        if type(value) in _TEXT_TYPES:
            text = cast("str | bytes | bytearray", value)
            return repr(text[:limit]) + "…" if len(text) > limit else repr(text)
        if type(value) in _NUMBER_TYPES or value is None:
            return repr(value)
        if type(value) in _CONTAINER_TYPES:
            return f"a {_type_name(value)} of {len(cast('list[object]', value))} items"
    except Exception:  # pragma: no cover - only odd values get here
        pass
    return f"a {_type_name(value)}"


def is_int(value: object) -> bool:
    return type(value) is int or (isinstance(value, int) and not isinstance(value, bool))


def _content_length(value: bytes | bytearray | memoryview) -> int | None:
    digits = bytes(value).strip()
    if digits.isdigit() and len(digits) <= 19:  # int() refuses very long digit strings
        return int(digits)
    return None


def _iterable(value: object) -> bool:
    try:
        return hasattr(type(value), "__iter__")
    except Exception:  # pragma: no cover
        return False


def check_status(reporter: Reporter, index: int, message: dict[str, Any], kind: str) -> int | None:
    """The ``status`` field as an int, or None when it is missing or wrong (and so reported)."""
    status = message.get("status", MISSING)
    if status is MISSING:
        reporter.report("http.status-type", f"{kind!r} has no 'status'", index)
    elif not is_int(status):
        reporter.report("http.status-type", f"'status' is {show(status)}, not an int", index)
    elif not 100 <= status <= 599:
        reporter.report("http.status-range", f"status {int(status)} is outside 100-599", index)
    else:
        return int(status)
    return None


def check_body(reporter: Reporter, index: int, message: dict[str, Any]) -> int | None:
    """The ``body`` field's length, or None when it is not bytes (and so reported)."""
    body = message.get("body", b"")
    if type(body) is bytes or isinstance(body, (bytes, bytearray)):
        return len(body)
    if isinstance(body, memoryview):
        return body.nbytes
    reporter.report("http.body-type", f"'body' is {show(body)}, not bytes", index)
    return None


def check_more(reporter: Reporter, index: int, message: dict[str, Any], kind: str) -> bool:
    """The ``more_body`` field as a bool (reported when it is not one)."""
    more = message.get("more_body", False)
    if more is True or more is False:
        return more
    reporter.report("http.more-body-type", f"'more_body' of {kind!r} is {show(more)}, not a bool", index)
    return bool(more)


def check_headers(
    reporter: Reporter, index: int, headers: object, kind: str, want_length: bool = False
) -> int | None:
    """Check a ``headers`` field; return the Content-Length it declares, when asked and valid."""
    if not isinstance(headers, (list, tuple)):
        if headers is None or isinstance(headers, (str, *BYTES_LIKE, Mapping)) or not _iterable(headers):
            reporter.report(
                "http.headers-type",
                f"'headers' of {kind!r} is {show(headers)}, not a list of [name, value] pairs",
                index,
            )
        # Any other iterable (a generator...) is left alone: walking it could use it up.
        return None
    length = None
    shape = case = control = False
    for number, pair in enumerate(headers):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            if not shape:
                shape = True
                reporter.report(
                    "http.headers-type",
                    f"header #{number} of {kind!r} is {show(pair)}, not a [name, value] pair",
                    index,
                )
            continue
        name, value = pair
        if not isinstance(name, (bytes, bytearray)) or not isinstance(value, (bytes, bytearray)):
            if not shape:
                shape = True
                reporter.report(
                    "http.headers-type",
                    f"header #{number} of {kind!r} is {show(name)}: {show(value)} "
                    f"({_type_name(name)}, {_type_name(value)}); names and values must be bytes",
                    index,
                )
            continue
        if not case and name != name.lower():
            case = True
            reporter.report(
                "http.header-case", f"header name {show(name)} in {kind!r} is not lowercased", index
            )
        if not control and (_CONTROL.search(name) is not None or _CONTROL.search(value) is not None):
            control = True
            where = "name" if _CONTROL.search(name) is not None else "value"
            reporter.report(
                "http.header-crlf",
                f"header {show(name)} in {kind!r} has a CR, LF or NUL in its {where}",
                index,
            )
        if want_length and length is None and len(name) == 14 and name.lower() == b"content-length":
            length = _content_length(value)
    return length
