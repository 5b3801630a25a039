"""Outgoing httpx calls answered from the recording while a connection is replayed (``--stub-calls``).

A replay is meant to show what the app does now with the same input; an upstream that answers
differently today (or is not there) is input too. So while one recorded connection is replayed,
``httpx.Client.send`` and ``httpx.AsyncClient.send`` answer from that connection's recorded
:class:`~asgispy.model.inside.OutgoingCall`\\ s: the first unused one with the same method and URL,
else the same method and URL without its query; with its status, headers and body, or its error
raised again. A call with no recording never reaches the network: it raises
``httpx.ConnectError`` in the app, and the replay report names it as a failure.

The patch is in place only for the replay (:func:`stubbing`) and restored after, even on an
error; a context variable says whose calls are stubbed, so anything else running in the
process (or a connection replayed without recordings) calls the network as usual.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from asgispy.model.connection import Connection
from asgispy.model.inside import OutgoingCall

if TYPE_CHECKING:
    import httpx

__all__ = ["Stubs", "answering", "stubbing"]

_current: contextvars.ContextVar[Stubs | None] = contextvars.ContextVar("asgispy_stubs", default=None)
#: not sent again: the recorded body is the decoded one, and its length is the body's
_DROPPED = frozenset({"content-encoding", "content-length", "transfer-encoding"})


def _without_query(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", "", ""))


@dataclass
class Stubs:
    """One connection's recorded calls, each answered once; what had no recording, in ``unrecorded``."""

    calls: list[OutgoingCall]
    used: list[bool] = field(default_factory=list)
    unrecorded: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.used = [False] * len(self.calls)

    @classmethod
    def of(cls, conn: Connection) -> Stubs:
        return cls([i for i in conn.inside if isinstance(i, OutgoingCall)])

    def take(self, method: str, url: str) -> OutgoingCall | None:
        """The first unused recording of ``method url``, else of ``method`` and url without query."""
        method = method.upper()
        for same in (lambda c: c.url == url, lambda c: _without_query(c.url) == _without_query(url)):
            for n, call in enumerate(self.calls):
                if not self.used[n] and call.method.upper() == method and same(call):
                    self.used[n] = True
                    return call
        self.unrecorded.append(f"{method} {url}")
        return None


@contextlib.contextmanager
def answering(stubs: Stubs) -> Iterator[Stubs]:
    """Within the block (and the tasks started in it), httpx calls are answered by ``stubs``."""
    token = _current.set(stubs)
    try:
        yield stubs
    finally:
        _current.reset(token)


@contextlib.contextmanager
def stubbing() -> Iterator[None]:
    """Patch httpx's ``send`` of both clients for the block; restored after, whatever happens."""
    try:
        import httpx
    except ImportError:  # no httpx: nothing to answer for
        yield
        return
    sync_send, async_send = httpx.Client.send, httpx.AsyncClient.send

    def send(self: httpx.Client, request: httpx.Request, *args: Any, **kwargs: Any) -> httpx.Response:
        stubs = _current.get()
        return sync_send(self, request, *args, **kwargs) if stubs is None else _answer(stubs, request)

    async def asend(
        self: httpx.AsyncClient, request: httpx.Request, *args: Any, **kwargs: Any
    ) -> httpx.Response:
        stubs = _current.get()
        if stubs is None:
            return await async_send(self, request, *args, **kwargs)
        return _answer(stubs, request)

    httpx.Client.send = send  # type: ignore[method-assign]
    httpx.AsyncClient.send = asend  # type: ignore[method-assign]
    try:
        yield
    finally:
        httpx.Client.send = sync_send  # type: ignore[method-assign]
        httpx.AsyncClient.send = async_send  # type: ignore[method-assign]


def _answer(stubs: Stubs, request: httpx.Request) -> httpx.Response:
    import httpx

    url = str(request.url)
    call = stubs.take(request.method, url)
    if call is None:
        # Never the network: an error the app's own handling of a failed call sees, and the report names.
        raise httpx.ConnectError(
            f"asgispy replay --stub-calls: no recorded answer for {request.method} {url}", request=request
        )
    if call.error:
        name, _, message = call.error.partition(":")
        kind = getattr(httpx, name.strip(), None)
        if not (isinstance(kind, type) and issubclass(kind, httpx.TransportError)):
            kind = httpx.ConnectError
        raise kind(message.strip() or call.error, request=request)
    headers = [(k, v) for k, v in call.response_headers if k.lower() not in _DROPPED]
    response = httpx.Response(
        call.status or 200, headers=headers, content=call.response_body, request=request
    )
    response.elapsed = datetime.timedelta(seconds=call.duration or 0.0)
    return response
