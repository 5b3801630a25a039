"""An outgoing HTTP call as an entry on the connection that made it, whichever client made it.

Each client's hook (httpx, requests, aiohttp) hands over plain values; here they become the
entry the record keeps: header pairs as text, bodies cut to the Spy's ``max_body`` (their true
size noted), the time from the connection's start and the duration, or the error.
"""

from __future__ import annotations

from collections.abc import Iterable
from time import perf_counter
from typing import Any

from asgispy.capture.layers import current_record
from asgispy.capture.record import ConnectionRecord

__all__ = ["Call", "calling"]


def _text_pairs(headers: Iterable[tuple[Any, Any]]) -> list[tuple[str, str]]:
    out = []
    for name, value in headers:
        n = name.decode("latin-1") if isinstance(name, (bytes, bytearray)) else str(name)
        v = value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else str(value)
        out.append((n, v))
    return out


def _size(headers: list[tuple[str, str]]) -> int | None:
    for name, value in headers:
        if name.lower() == "content-length" and value.strip().isdigit():
            return int(value)
    return None


class Call:
    """One outgoing call being made on behalf of ``record`` (None: not inside a recorded one)."""

    __slots__ = ("entry", "record", "started")

    def __init__(self, record: ConnectionRecord, library: str, method: str, url: str) -> None:
        self.record = record
        self.started = perf_counter()
        self.entry: dict[str, Any] = {
            "kind": "http",
            "t": self.started - record.t0,
            "library": library,
            "method": method,
            "url": url,
            "status": None,
            "duration": None,
            "request_headers": [],
            "response_headers": [],
            "request_body": b"",
            "response_body": b"",
            "request_size": None,
            "response_size": None,
            "error": None,
        }

    def _bound(self) -> int:
        options = self.record.inside_options
        return options.max_body if options is not None else 0

    def request(self, headers: Iterable[tuple[Any, Any]], body: bytes | None) -> None:
        entry = self.entry
        entry["request_headers"] = pairs = _text_pairs(headers)
        if body is not None:
            entry["request_body"] = bytes(body[: self._bound()])
            entry["request_size"] = len(body)
        else:
            entry["request_size"] = _size(pairs)

    def response(self, status: int, headers: Iterable[tuple[Any, Any]], body: bytes | None) -> None:
        entry = self.entry
        entry["status"] = status
        entry["response_headers"] = pairs = _text_pairs(headers)
        if body is not None:
            entry["response_body"] = bytes(body[: self._bound()])
            entry["response_size"] = len(body)
        else:
            entry["response_size"] = _size(pairs)

    def failed(self, exc: BaseException) -> None:
        self.entry["error"] = f"{type(exc).__name__}: {exc}"[:1000]

    def done(self) -> None:
        self.entry["duration"] = perf_counter() - self.started
        self.record.did(self.entry)


def calling(library: str, method: str, url: str) -> Call | None:
    """A Call for the connection this code runs for, if its Spy records outgoing calls."""
    record = current_record.get()
    if record is None:
        return None
    options = record.inside_options
    if options is None or "http" not in options.kinds:
        return None
    return Call(record, library, method, url)
