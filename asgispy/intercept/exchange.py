"""What an addon's hooks are handed: one HTTP exchange (its request, later its response), and
each WebSocket message. Plain objects: what a hook sets on them is what the app or the client gets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from asgispy.intercept.headers import Headers

__all__ = ["BodyNotRead", "Exchange", "Request", "Response", "WebSocketMessage", "as_bytes"]


class BodyNotRead(RuntimeError):
    """A hook read ``request.body`` that was not read for it (see :class:`Request`)."""


def as_bytes(value: bytes | bytearray | memoryview | str) -> bytes:
    """A body as a hook may give it: bytes, or text (sent as UTF-8)."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"a body is bytes or str, not {type(value).__name__}")


class Request:
    """The request as the app will see it. ``method``, ``path``, ``query`` (the query string
    as text, without ``?``) and ``headers`` are editable; so is ``body``, the whole request
    body, which is read from the client only for hooks that use it (a hook whose code names
    ``body``, or an addon with ``body = True``), then handed to the app as one message."""

    __slots__ = ("_body", "headers", "http_version", "method", "path", "query", "scheme")

    def __init__(
        self,
        method: str,
        path: str,
        query: str,
        headers: Headers,
        *,
        scheme: str = "http",
        http_version: str = "1.1",
        body: bytes | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.scheme = scheme
        self.http_version = http_version
        self._body = body

    @property
    def body(self) -> bytes:
        if self._body is None:
            raise BodyNotRead(
                "the request body was not read for this hook: name `body` in the hook's own code, "
                "or set `body = True` on the addon"
            )
        return self._body

    @body.setter
    def body(self, value: bytes | str) -> None:
        self._body = as_bytes(value)

    @property
    def body_read(self) -> bool:
        return self._body is not None

    @property
    def text(self) -> str:
        """The body as UTF-8 text (bytes that are not UTF-8 become U+FFFD)."""
        return self.body.decode("utf-8", "replace")

    @text.setter
    def text(self, value: str) -> None:
        self._body = value.encode("utf-8")

    @property
    def url(self) -> str:
        """The path and query as a client would write them."""
        return f"{self.path}?{self.query}" if self.query else self.path

    def copy(self) -> Request:
        return Request(
            self.method,
            self.path,
            self.query,
            self.headers.copy(),
            scheme=self.scheme,
            http_version=self.http_version,
            body=self._body,
        )

    def __repr__(self) -> str:
        return f"Request({self.method} {self.url})"


class Response:
    """The response as the client will get it. ``status``, ``headers`` and ``body`` are
    editable; Content-Length follows the body. For a streamed response (no length, sent in
    chunks) ``streaming`` is True and ``body`` is None: the ``response`` hook sees the start,
    and a ``response_chunk`` hook each chunk."""

    __slots__ = ("_body", "headers", "status", "streaming")

    def __init__(
        self, status: int, headers: Headers, body: bytes | None = b"", *, streaming: bool = False
    ) -> None:
        self.status = int(status)
        self.headers = headers
        self._body = body
        self.streaming = streaming

    @property
    def body(self) -> bytes | None:
        return self._body

    @body.setter
    def body(self, value: bytes | str) -> None:
        self._body = as_bytes(value)

    @property
    def text(self) -> str:
        return (self._body or b"").decode("utf-8", "replace")

    @text.setter
    def text(self, value: str) -> None:
        self._body = value.encode("utf-8")

    def copy(self) -> Response:
        return Response(self.status, self.headers.copy(), self._body, streaming=self.streaming)

    def __repr__(self) -> str:
        return f"Response({self.status})"


@dataclass
class Exchange:
    """One HTTP request and its response, or one WebSocket connection, as the hooks see it.

    ``state`` is the addon's own: what one hook puts there the next hook of the same exchange
    finds. :meth:`respond` answers the client from the ``request`` hook without calling the app.
    """

    request: Request
    scope_type: str = "http"
    response: Response | None = None
    state: dict[str, Any] = field(default_factory=dict)
    #: set by respond(): the app is not called
    answered: bool = False

    def respond(
        self,
        status: int = 200,
        headers: dict[str, str] | list[tuple[str, str]] | Headers | None = None,
        body: bytes | str = b"",
    ) -> None:
        """Answer the client with this response; the app never sees the request."""
        self.response = Response(status, Headers.from_mapping(headers), as_bytes(body))
        self.answered = True


class WebSocketMessage:
    """One WebSocket message, either way: ``from_client`` tells which. Exactly one of ``text``
    and ``bytes`` is set; a hook returns it (edited or not), a new one, text, bytes, or None to
    drop it."""

    __slots__ = ("bytes", "from_client", "text")

    def __init__(self, from_client: bool, text: str | None = None, data: bytes | None = None) -> None:
        self.from_client = from_client
        self.text = text
        self.bytes = data

    @property
    def content(self) -> str | bytes:
        return self.text if self.text is not None else (self.bytes or b"")

    def __repr__(self) -> str:
        side = "client" if self.from_client else "app"
        return f"WebSocketMessage(from {side}: {self.content!r:.60})"
