"""An outgoing HTTP call as an entry on the connection that made it, whichever client made it.

Each client's hook (httpx, requests, aiohttp) hands over plain values; here they become the
entry the record keeps: header pairs as text, bodies cut to the Spy's ``max_body`` (their true
size noted), the time from the connection's start and the duration, or the error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from time import perf_counter
from typing import Any

from asgispy.capture.layers import current_record
from asgispy.capture.record import ConnectionRecord

__all__ = ["Call", "begin", "end", "patch"]


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


#: what a client's hook says of the request it is about to send: method, URL, headers, and a
#: function giving the body (None, or raising, for a body that is not read here)
Describe = Callable[[], tuple[str, str, Iterable[tuple[Any, Any]], Callable[[], "bytes | None"]]]


def begin(library: str, describe: Describe) -> Call | None:
    """The call about to be made, with its request, if its connection records calls. Never
    raises: ``describe`` is asked only then, inside the guard, and a body it cannot give is left out."""
    try:
        record = current_record.get()
        if record is None:
            return None
        options = record.inside_options
        if options is None or "http" not in options.kinds:
            return None
        method, url, headers, body = describe()
        call = Call(record, library, method, url)
        try:
            content = body()
        except Exception:  # a streamed request body: not read here
            content = None
        call.request(headers, content)
        return call
    except Exception:
        return None


def end(
    call: Call,
    status: int | None = None,
    headers: Iterable[tuple[Any, Any]] = (),
    body: bytes | None = None,
    exc: BaseException | None = None,
    url: str | None = None,
) -> None:
    """What came back (``status``) or went wrong (``exc``), onto the record; never raises:
    recording must never change what the app's call did."""
    try:
        if url is not None:
            call.entry["url"] = url
        if status is not None:
            call.response(status, headers, body)
        if exc is not None:
            call.failed(exc)
        call.done()
    except Exception:
        pass


def patch(owner: Any, name: str, wrapper: Callable[..., Any]) -> Callable[[], None]:
    """Put ``wrapper`` in place of ``owner.name``; the function returned puts the original back."""
    original = getattr(owner, name)
    wrapper.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(owner, name, wrapper)
    return lambda: setattr(owner, name, original)
