"""What the filters read of a connection, decoded and lower-cased once and kept.

A filter runs over every connection the store holds on each keystroke, so the text that
free words and ``host:``/``header:`` search (header pairs, the free-text haystack) is built
the first time a connection is looked at, then reused until the connection changes in a way
that would change it. Apart from the fields so that cache has one owner and one lifetime.
"""

from __future__ import annotations

import weakref
from typing import Any

from asgispy.codec import jsonform
from asgispy.model.connection import Connection
from asgispy.model.event import Event

__all__ = ["ConnectionView", "view_of"]


class ConnectionView:
    """What the filters read of a connection, decoded and lower-cased once, on first use.

    Cached per connection and rebuilt when its status or handler changes (a response started,
    the app returned): nothing else these fields depend on changes once a connection is open.
    """

    __slots__ = ("_headers", "_text", "handler", "status")

    def __init__(self, conn: Connection) -> None:
        self.status = conn.status
        self.handler = conn.handler
        self._text: str | None = None
        self._headers: tuple[tuple[str, str], ...] | None = None

    def text(self, conn: Connection) -> str:
        """Free text's haystack: method, target, route, endpoint, status, type, request header values."""
        if self._text is None:
            handler = conn.handler or {}
            try:
                values = b"\n".join(value for _, value in conn.scope.get("headers") or ()).decode("latin-1")
            except (TypeError, ValueError):  # not a list of byte pairs: take what is well-formed
                values = b"\n".join(value for _, value in conn.request_headers).decode("latin-1")
            parts = (
                conn.method or "",
                conn.target,
                str(handler.get("route") or ""),
                str(handler.get("endpoint") or ""),
                str(conn.status or ""),
                conn.type,
                values,
            )
            self._text = "\n".join(parts).lower()
        return self._text

    def headers(self, conn: Connection) -> tuple[tuple[str, str], ...]:
        """Request then response headers as lower-cased text pairs."""
        if self._headers is None:
            start = _response_start(conn)
            scope = conn.scope_doc  # parsed from the stored JSON on each read: read once
            request = _doc_pairs(scope.get("headers") if type(scope) is dict else None)
            response = _doc_pairs(start.doc.get("headers")) if start is not None else []
            if request is None:
                request = _pairs(conn.request_headers)
            if response is None:
                response = _pairs(conn.response_headers)
            self._headers = tuple(request + response)
        return self._headers

    def host(self, conn: Connection) -> str:
        for key, value in self.headers(conn):
            if key == "host":
                return value
        return _server(conn)


# Views live as long as their connection: a store that evicts a connection frees its view too.
_VIEWS: weakref.WeakKeyDictionary[Connection, ConnectionView] = weakref.WeakKeyDictionary()


def view_of(conn: Connection) -> ConnectionView:
    view = _VIEWS.get(conn)
    if view is None or view.status != conn.status or view.handler is not conn.handler:
        view = _VIEWS[conn] = ConnectionView(conn)
    return view


_RESPONSE_STARTS = frozenset({"http.response.start", "websocket.http.response.start", "websocket.accept"})


def _response_start(conn: Connection) -> Event | None:
    for event in conn.events:
        if event.type in _RESPONSE_STARTS:
            return event
    return None


def _doc_pairs(doc: Any) -> list[tuple[str, str]] | None:
    """Lower-cased header pairs read straight from their JSON form (no bytes decoding).

    Header names and values that are clean UTF-8 are plain strings there; the rest are tagged
    bytes, read as Latin-1. None when ``doc`` is not a header list: the caller decodes instead.
    """
    if type(doc) is list and not doc:
        return []
    if type(doc) is not dict or len(doc) != 1 or type(doc.get("$headers")) is not list:
        return None
    try:
        return [(_doc_text(k), _doc_text(v)) for k, v in doc["$headers"]]
    except (TypeError, ValueError):
        return None


def _doc_text(item: Any) -> str:
    if type(item) is str:
        return item.lower()
    value = jsonform.decode(item)
    if type(value) is not bytes:
        raise ValueError("not a header")
    return value.decode("latin-1").lower()


def _pairs(headers: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [(k.decode("latin-1").lower(), v.decode("latin-1").lower()) for k, v in headers]


def _server(conn: Connection) -> str:
    server = conn.server
    if server is None:
        return ""
    return f"{server.host}:{server.port}" if server.port is not None else server.host
