"""A live ASGI protocol checker: feed it a connection's messages, get back what broke the spec.

The checker belongs to the viewer side (collector, store, ``asgispy.load``, ``asgispy check``):
it reads recorded messages and never runs on the app's request path. One :class:`Checker`
follows one connection, message by message::

    checker = Checker("http", method="GET")
    for index, (direction, message) in enumerate(events):
        for violation in checker.feed(index, direction, message):
            ...
    checker.finish("completed")
    checker.violations          # everything reported, in order

Messages are taken exactly as the app saw them (bytes as bytes) and may be anything at all:
the checker reports what it cannot read instead of raising. It keeps its state in plain
attributes and allocates nothing for a message that breaks no rule, so a viewer can feed it
every message it receives. The rules themselves are in :mod:`asgispy.analysis.rules`.

Sequence rules (a second start, something after the final body, a send before accept...)
are reported once per connection, at the first offending event; rules about one message's
fields are reported for every message that breaks them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, cast

from asgispy.analysis.rules import RULES
from asgispy.types import Direction

__all__ = ["CheckedEvent", "Checker", "Violation", "check_events"]


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule: which, how serious, what exactly happened, and at which event.

    ``event`` is the index of the event at fault in the connection's event list; it is None
    only when no single event is (a response that was never finished).
    """

    rule: str
    severity: str
    message: str
    event: int | None


class _NoViolations(list[Violation]):
    """The empty list :meth:`Checker.feed` returns for a clean message: shared, so read-only."""

    __slots__ = ()

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError("the empty result of Checker.feed is shared and cannot be changed")

    append = extend = insert = remove = pop = clear = sort = reverse = _refuse
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse


_NO_VIOLATIONS: list[Violation] = _NoViolations()

# Message types per scope type and direction: the core specs and the extensions document.
_HTTP_SEND = frozenset(
    {
        "http.response.start",
        "http.response.body",
        "http.response.trailers",
        "http.response.pathsend",
        "http.response.zerocopysend",
        "http.response.push",
        "http.response.early_hint",
        "http.response.debug",
    }
)
_HTTP_RECEIVE = frozenset({"http.request", "http.disconnect"})
_WS_SEND = frozenset(
    {
        "websocket.accept",
        "websocket.send",
        "websocket.close",
        "websocket.http.response.start",
        "websocket.http.response.body",
    }
)
_WS_RECEIVE = frozenset({"websocket.connect", "websocket.receive", "websocket.disconnect"})
_LIFESPAN_SEND = frozenset(
    {
        "lifespan.startup.complete",
        "lifespan.startup.failed",
        "lifespan.shutdown.complete",
        "lifespan.shutdown.failed",
    }
)
_LIFESPAN_RECEIVE = frozenset({"lifespan.startup", "lifespan.shutdown"})
_TYPES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "http": (_HTTP_SEND, _HTTP_RECEIVE),
    "websocket": (_WS_SEND, _WS_RECEIVE),
    "lifespan": (_LIFESPAN_SEND, _LIFESPAN_RECEIVE),
}
_NONE: frozenset[str] = frozenset()

#: Close codes that must never be put in a close frame (RFC 6455 section 7.4.1).
_RESERVED_CLOSE_CODES = frozenset({1004, 1005, 1006, 1015})
_CONTROL = re.compile(rb"[\r\n\x00]")
_BYTES_LIKE = (bytes, bytearray, memoryview)
_MISSING: Any = object()
_TEXT_TYPES = (str, bytes, bytearray)
_NUMBER_TYPES = (int, float, bool)
_CONTAINER_TYPES = (list, tuple, dict)


def _type_name(value: object) -> str:
    try:
        return type(value).__name__
    except Exception:  # pragma: no cover - a metaclass that refuses to name its class
        return "object"


def _show(value: object, limit: int = 40) -> str:
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


def _is_int(value: object) -> bool:
    return type(value) is int or (isinstance(value, int) and not isinstance(value, bool))


def _content_length(value: bytes | bytearray | memoryview) -> int | None:
    digits = bytes(value).strip()
    if digits.isdigit() and len(digits) <= 19:  # int() refuses very long digit strings
        return int(digits)
    return None


class Checker:
    """Checks one connection's messages against the ASGI spec, one message at a time.

    ``scope_type`` is the scope's ``type`` (``http``, ``websocket``, ``lifespan``; any other
    type gets only the message-shape check) and ``method`` the HTTP method, for the HEAD rules.
    """

    __slots__ = (
        "_accepted_at",
        "_closed_at",
        "_denied_at",
        "_disconnect_at",
        "_final_at",
        "_first_body_at",
        "_got_shutdown",
        "_got_startup",
        "_length",
        "_no_body",
        "_receive",
        "_receive_types",
        "_reported",
        "_send",
        "_send_types",
        "_sent_bytes",
        "_shutdown_answer",
        "_start_at",
        "_startup_answer",
        "_status",
        "_trailers",
        "_trailers_done",
        "finished",
        "head",
        "method",
        "scope_type",
        "violations",
    )

    def __init__(self, scope_type: str, method: str | None = None) -> None:
        self.scope_type = scope_type
        self.method = method
        self.head = isinstance(method, str) and method.upper() == "HEAD"
        #: everything reported so far, in the order it was found
        self.violations: list[Violation] = []
        self.finished = False
        #: sequence rules already reported (each is reported once per connection)
        self._reported: set[str] = set()
        # Where things happened (event indexes; None: not yet).
        self._disconnect_at: int | None = None  # http.disconnect / websocket.disconnect received
        # HTTP
        self._start_at: int | None = None
        self._first_body_at: int | None = None
        self._final_at: int | None = None  # the response is complete (but for declared trailers)
        self._status: int | None = None
        self._length: int | None = None  # the declared Content-Length, while it is checked
        self._sent_bytes = 0
        self._no_body = False  # HEAD, 204 or 304
        self._trailers = False
        self._trailers_done = False
        # WebSocket
        self._accepted_at: int | None = None
        self._denied_at: int | None = None  # websocket.http.response.start
        self._closed_at: int | None = None  # websocket.close, or the final denial body
        # Lifespan
        self._got_startup = False
        self._got_shutdown = False
        self._startup_answer: tuple[str, int] | None = None
        self._shutdown_answer: tuple[str, int] | None = None

        types = _TYPES.get(scope_type) if type(scope_type) is str else None
        self._send_types, self._receive_types = types or (_NONE, _NONE)
        self._send: Callable[[int, str, dict[str, Any], Mapping[str, int] | None], None]
        self._receive: Callable[[int, str, dict[str, Any]], None]
        if scope_type == "http":
            self._send, self._receive = self._http_send, self._http_receive
        elif scope_type == "websocket":
            self._send, self._receive = self._ws_send, self._ws_receive
        elif scope_type == "lifespan":
            self._send, self._receive = self._lifespan_send, self._lifespan_receive
        else:
            self._send, self._receive = _ignore_send, _ignore_receive

    # Public API --------------------------------------------------------------------------------

    def feed(
        self,
        index: int,
        direction: Direction,
        message: object,
        sizes: Mapping[str, int] | None = None,
    ) -> list[Violation]:
        """Check the message at ``index`` (``direction`` as the app saw it); return what it broke.

        ``sizes`` gives the original length of payload fields the recording cut (Spy's
        ``max_body``), so Content-Length is checked against what was really sent. The list
        returned for a clean message is shared and read-only; every violation is also
        appended to :attr:`violations`.
        """
        violations = self.violations
        before = len(violations)
        # A plain try (not contextlib.suppress, which costs a call per message): a value no check
        # foresaw keeps what was found so far and never stops the viewer.
        try:  # noqa: SIM105
            self._feed(index, direction, message, sizes)
        except Exception:
            pass
        if len(violations) == before:
            return _NO_VIOLATIONS
        return violations[before:]

    def finish(self, outcome: str) -> list[Violation]:
        """The connection ended with ``outcome``; return what only the end can tell.

        Nothing is reported for ``"open"``; the first other outcome is final.
        """
        violations = self.violations
        before = len(violations)
        try:  # noqa: SIM105
            self._finish(outcome)
        except Exception:  # pragma: no cover - as in feed
            pass
        return violations[before:] if len(violations) > before else _NO_VIOLATIONS

    # Dispatch ----------------------------------------------------------------------------------

    def _feed(self, index: int, direction: str, message: object, sizes: Mapping[str, int] | None) -> None:
        if direction != "send" and direction != "receive":
            return  # not an event of the app's: nothing to check
        if not isinstance(message, dict):
            self._report(
                "message.malformed", f"the {_verb(direction)} message is {_show(message)}, not a dict", index
            )
            return
        kind = message.get("type", _MISSING)
        if type(kind) is not str:
            if not isinstance(kind, str):
                what = "has no 'type'" if kind is _MISSING else f"has a 'type' that is {_show(kind)}"
                self._report("message.malformed", f"the {_verb(direction)} message {what}, not a str", index)
                return
            kind = str.__str__(kind)
        if direction == "send":
            self._send(index, kind, message, sizes)
        else:
            self._receive(index, kind, message)

    def _report(self, rule: str, message: str, index: int | None) -> None:
        self.violations.append(Violation(rule, RULES[rule].severity, message, index))

    def _once(self, rule: str, message: str, index: int | None) -> None:
        """Report a sequence rule, the first time only."""
        reported = self._reported
        if rule not in reported:
            reported.add(rule)
            self._report(rule, message, index)

    def _unknown(self, index: int, kind: str, direction: str) -> None:
        scope = self.scope_type
        shown = _show(kind)  # a junk type may be long
        if kind in (self._receive_types if direction == "send" else self._send_types):
            if direction == "send":
                text = f"{shown} is a message the server sends to the app, not one the app sends"
            else:
                text = f"{shown} is a message the app sends, not one it receives"
        else:
            owner = next((name for name, (s, r) in _TYPES.items() if kind in s or kind in r), None)
            if owner is not None and owner != scope:
                text = f"{shown} belongs to the {owner} protocol, not to a {scope} scope"
            else:
                text = f"{shown} is not a message type of the {scope} protocol or of a known extension"
        self._report("message.unknown-type", f"{_verb(direction)}: {text}", index)

    # Field checks shared by HTTP and WebSocket -------------------------------------------------

    def _check_status(self, index: int, message: dict[str, Any], kind: str) -> int | None:
        status = message.get("status", _MISSING)
        if status is _MISSING:
            self._report("http.status-type", f"{kind!r} has no 'status'", index)
        elif not _is_int(status):
            self._report("http.status-type", f"'status' is {_show(status)}, not an int", index)
        elif not 100 <= status <= 599:
            self._report("http.status-range", f"status {int(status)} is outside 100-599", index)
        else:
            return int(status)
        return None

    def _check_body(self, index: int, message: dict[str, Any]) -> int | None:
        """The ``body`` field's length, or None when it is not bytes (and so reported)."""
        body = message.get("body", b"")
        if type(body) is bytes or isinstance(body, (bytes, bytearray)):
            return len(body)
        if isinstance(body, memoryview):
            return body.nbytes
        self._report("http.body-type", f"'body' is {_show(body)}, not bytes", index)
        return None

    def _check_more(self, index: int, message: dict[str, Any], kind: str) -> bool:
        more = message.get("more_body", False)
        if more is True or more is False:
            return more
        self._report("http.more-body-type", f"'more_body' of {kind!r} is {_show(more)}, not a bool", index)
        return bool(more)

    def _check_headers(self, index: int, headers: object, kind: str, want_length: bool = False) -> int | None:
        """Check a ``headers`` field; return the Content-Length it declares, when asked and valid."""
        if not isinstance(headers, (list, tuple)):
            if headers is None or isinstance(headers, (str, *_BYTES_LIKE, Mapping)) or not _iterable(headers):
                self._report(
                    "http.headers-type",
                    f"'headers' of {kind!r} is {_show(headers)}, not a list of [name, value] pairs",
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
                    self._report(
                        "http.headers-type",
                        f"header #{number} of {kind!r} is {_show(pair)}, not a [name, value] pair",
                        index,
                    )
                continue
            name, value = pair
            if not isinstance(name, (bytes, bytearray)) or not isinstance(value, (bytes, bytearray)):
                if not shape:
                    shape = True
                    self._report(
                        "http.headers-type",
                        f"header #{number} of {kind!r} is {_show(name)}: {_show(value)} "
                        f"({_type_name(name)}, {_type_name(value)}); names and values must be bytes",
                        index,
                    )
                continue
            if not case and name != name.lower():
                case = True
                self._report(
                    "http.header-case", f"header name {_show(name)} in {kind!r} is not lowercased", index
                )
            if not control and (_CONTROL.search(name) is not None or _CONTROL.search(value) is not None):
                control = True
                where = "name" if _CONTROL.search(name) is not None else "value"
                self._report(
                    "http.header-crlf",
                    f"header {_show(name)} in {kind!r} has a CR, LF or NUL in its {where}",
                    index,
                )
            if want_length and length is None and len(name) == 14 and name.lower() == b"content-length":
                length = _content_length(value)
        return length

    # HTTP --------------------------------------------------------------------------------------

    def _http_receive(self, index: int, kind: str, message: dict[str, Any]) -> None:
        if kind == "http.request":
            return
        if kind == "http.disconnect":
            if self._disconnect_at is None:
                self._disconnect_at = index
            return
        self._unknown(index, kind, "receive")

    def _http_send(
        self, index: int, kind: str, message: dict[str, Any], sizes: Mapping[str, int] | None
    ) -> None:
        if kind not in _HTTP_SEND:
            self._unknown(index, kind, "send")
            return
        if self._final_at is not None:
            if kind == "http.response.trailers" and self._trailers and not self._trailers_done:
                self._check_headers(index, message.get("headers", ()), kind)
                if not message.get("more_trailers", False):
                    self._trailers_done = True
                return
            last = "its trailers" if self._trailers_done else f"the final body (event {self._final_at})"
            self._once(
                "http.after-final", f"{kind!r} was sent after the response was complete with {last}", index
            )
            return
        if self._disconnect_at is not None:
            self._once(
                "http.send-after-disconnect",
                f"{kind!r} was sent after the app received 'http.disconnect' (event {self._disconnect_at})",
                index,
            )
        if kind == "http.response.body":
            size = self._check_body(index, message)
            if sizes is not None and size is not None:
                full = sizes.get("body")
                if _is_int(full):
                    size = full
            more = message.get("more_body", False)
            if more is not True and more is not False:
                more = self._check_more(index, message, kind)
            self._content(index, kind, size, not more)
        elif kind == "http.response.start":
            self._http_start(index, message, kind)
        elif kind == "http.response.trailers":
            self._check_headers(index, message.get("headers", ()), kind)
            where = (
                "the final body has not been sent yet"
                if self._trailers
                else "'http.response.start' did not declare 'trailers': True"
            )
            self._once("http.trailers-misplaced", f"'http.response.trailers' was sent, but {where}", index)
        elif kind == "http.response.pathsend":
            self._length = None  # the file's size is not in the message
            self._content(index, kind, None, True)
        elif kind == "http.response.zerocopysend":
            self._length = None
            self._content(index, kind, None, not self._check_more(index, message, kind))
        elif kind == "http.response.push":
            self._check_headers(index, message.get("headers", ()), kind)
        # http.response.early_hint and http.response.debug: nothing to check here

    def _http_start(self, index: int, message: dict[str, Any], kind: str) -> None:
        if self._start_at is not None:
            self._once(
                "http.start-twice",
                f"a second 'http.response.start' (the first was event {self._start_at})",
                index,
            )
            return
        self._start_at = index
        if self._first_body_at is not None:
            self._once(
                "http.start-after-body",
                f"'http.response.start' came after the response body had begun (event {self._first_body_at})",
                index,
            )
        status = self._status = self._check_status(index, message, kind)
        length = self._check_headers(index, message.get("headers", ()), kind, want_length=True)
        self._trailers = bool(message.get("trailers", False))
        self._no_body = self.head or status == 204 or status == 304
        if length is not None and not self._no_body:
            self._length = length

    def _content(self, index: int, kind: str, size: int | None, final: bool) -> None:
        """Response content (a body, a path, a file); ``size`` None when unknown or not bytes."""
        if self._first_body_at is None:
            self._first_body_at = index
        if self._start_at is None:
            # Without a start nothing is sent and nothing completes: the start may still come.
            self._once("http.body-before-start", f"{kind!r} was sent before 'http.response.start'", index)
            return
        if size:
            if self._no_body:
                if self.head:
                    self._once(
                        "http.head-body",
                        f"{size} body bytes were sent in answer to a HEAD request; the server drops them",
                        index,
                    )
                else:
                    self._once(
                        "http.body-not-allowed",
                        f"a {self._status} response has no body, but {size} bytes were sent",
                        index,
                    )
            length = self._length
            if length is not None:
                sent = self._sent_bytes = self._sent_bytes + size
                if sent > length:
                    self._length = None  # reported once, and never again as too few
                    self._report(
                        "http.content-length", f"Content-Length says {length} bytes, {sent} were sent", index
                    )
        if final:
            self._final_at = index
            length = self._length
            if length is not None and self._sent_bytes < length:
                self._report(
                    "http.content-length",
                    f"Content-Length says {length} bytes, only {self._sent_bytes} were sent "
                    "by the final body",
                    index,
                )

    # WebSocket ---------------------------------------------------------------------------------

    def _ws_receive(self, index: int, kind: str, message: dict[str, Any]) -> None:
        if kind == "websocket.receive" or kind == "websocket.connect":
            return
        if kind == "websocket.disconnect":
            if self._disconnect_at is None:
                self._disconnect_at = index
            return
        self._unknown(index, kind, "receive")

    def _ws_send(
        self, index: int, kind: str, message: dict[str, Any], sizes: Mapping[str, int] | None
    ) -> None:
        if kind not in _WS_SEND:
            self._unknown(index, kind, "send")
            return
        if self._closed_at is not None:
            self._once(
                "websocket.after-close",
                f"{kind!r} was sent after the connection was closed (event {self._closed_at})",
                index,
            )
            return
        if self._disconnect_at is not None:
            self._once(
                "websocket.send-after-disconnect",
                f"{kind!r} was sent after the app received 'websocket.disconnect' "
                f"(event {self._disconnect_at})",
                index,
            )
        if kind == "websocket.send":
            if self._accepted_at is None:
                self._once(
                    "websocket.send-before-accept",
                    "'websocket.send' was sent before 'websocket.accept'",
                    index,
                )
            self._ws_payload(index, message)
        elif kind == "websocket.accept":
            self._ws_accept(index, message, kind)
        elif kind == "websocket.close":
            # Before accept, this is the spec's way to reject the handshake (403): no violation.
            if self._denied_at is not None:
                self._once(
                    "websocket.denial-order",
                    "'websocket.close' in the middle of a denial response "
                    f"(begun at event {self._denied_at})",
                    index,
                )
            self._closed_at = index
            self._ws_close(index, message)
        elif kind == "websocket.http.response.start":
            if self._accepted_at is not None:
                self._once(
                    "websocket.denial-order",
                    f"a denial response after 'websocket.accept' (event {self._accepted_at}): "
                    "the handshake is already complete",
                    index,
                )
            elif self._denied_at is not None:
                self._once(
                    "websocket.denial-order",
                    f"a second 'websocket.http.response.start' (the first was event {self._denied_at})",
                    index,
                )
            else:
                self._denied_at = index
            self._check_status(index, message, kind)
            self._check_headers(index, message.get("headers", ()), kind)
        else:  # websocket.http.response.body
            self._check_body(index, message)
            more = message.get("more_body", False)
            if more is not True and more is not False:
                more = self._check_more(index, message, kind)
            if self._denied_at is None or self._accepted_at is not None:
                self._once(
                    "websocket.denial-order",
                    "'websocket.http.response.body' was sent without a denial response begun by "
                    "'websocket.http.response.start'",
                    index,
                )
            elif not more:
                self._closed_at = index

    def _ws_accept(self, index: int, message: dict[str, Any], kind: str) -> None:
        if self._accepted_at is not None:
            self._once(
                "websocket.accept-twice",
                f"a second 'websocket.accept' (the first was event {self._accepted_at})",
                index,
            )
            return
        if self._denied_at is not None:
            self._once(
                "websocket.denial-order",
                f"'websocket.accept' after a denial response began (event {self._denied_at})",
                index,
            )
            return
        self._accepted_at = index
        subprotocol = message.get("subprotocol")
        if subprotocol is not None and not isinstance(subprotocol, str):
            self._report(
                "websocket.field-type", f"'subprotocol' is {_show(subprotocol)}, not a str or None", index
            )
        headers = message.get("headers", _MISSING)
        if headers is not _MISSING:
            self._check_headers(index, headers, kind)

    def _ws_payload(self, index: int, message: dict[str, Any]) -> None:
        text = message.get("text")
        data = message.get("bytes")
        if text is None and data is None:
            self._report("websocket.send-payload", "'websocket.send' has neither 'text' nor 'bytes'", index)
            return
        if text is not None and data is not None:
            self._report(
                "websocket.send-payload",
                "'websocket.send' has both 'text' and 'bytes'; exactly one may be set",
                index,
            )
        if text is not None and not isinstance(text, str):
            self._report("websocket.field-type", f"'text' is {_show(text)}, not a str", index)
        if data is not None and not isinstance(data, _BYTES_LIKE):
            self._report("websocket.field-type", f"'bytes' is {_show(data)}, not bytes", index)

    def _ws_close(self, index: int, message: dict[str, Any]) -> None:
        code = message.get("code", 1000)
        if not _is_int(code):
            self._report("websocket.close-code", f"close code {_show(code)} is not an int", index)
        elif code in _RESERVED_CLOSE_CODES:
            self._report(
                "websocket.close-code",
                f"close code {int(code)} is reserved for reporting; it must never be sent in a close frame",
                index,
            )
        elif not (1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999):
            self._report(
                "websocket.close-code",
                f"close code {int(code)} is outside 1000-1003, 1007-1014 and 3000-4999",
                index,
            )
        reason = message.get("reason")
        if reason is None:
            return
        if not isinstance(reason, str):
            self._report("websocket.field-type", f"close 'reason' is {_show(reason)}, not a str", index)
        elif len(reason) > 30:  # 30 characters are at most 120 bytes of UTF-8
            size = len(reason.encode("utf-8", "surrogatepass"))
            if size > 123:
                self._report(
                    "websocket.close-reason-length",
                    f"the close reason is {size} bytes of UTF-8; at most 123 fit in a close frame",
                    index,
                )

    # Lifespan ----------------------------------------------------------------------------------

    def _lifespan_receive(self, index: int, kind: str, message: dict[str, Any]) -> None:
        if kind == "lifespan.startup":
            self._got_startup = True
        elif kind == "lifespan.shutdown":
            self._got_shutdown = True
        else:
            self._unknown(index, kind, "receive")
            return
        answer = self._startup_answer
        if answer is not None and answer[0] == "lifespan.startup.failed":
            self._once(
                "lifespan.served-after-failure",
                f"the app received {kind!r} after it sent 'lifespan.startup.failed' (event {answer[1]}); "
                "the server should have exited",
                index,
            )

    def _lifespan_send(
        self, index: int, kind: str, message: dict[str, Any], sizes: Mapping[str, int] | None
    ) -> None:
        if kind not in _LIFESPAN_SEND:
            self._unknown(index, kind, "send")
            return
        startup = kind.startswith("lifespan.startup.")
        phase = "lifespan.startup" if startup else "lifespan.shutdown"
        answer = self._startup_answer if startup else self._shutdown_answer
        if answer is not None:
            self._report(
                "lifespan.startup-twice" if startup else "lifespan.shutdown-twice",
                f"{kind!r} after {answer[0]!r} (event {answer[1]}): {phase!r} is answered once",
                index,
            )
            return
        if not (self._got_startup if startup else self._got_shutdown):
            self._report(
                "lifespan.out-of-order", f"{kind!r} was sent before the app received {phase!r}", index
            )
        if startup:
            self._startup_answer = (kind, index)
        else:
            self._shutdown_answer = (kind, index)

    # The end -----------------------------------------------------------------------------------

    def _finish(self, outcome: str) -> None:
        if outcome == "open" or self.finished:
            return
        self.finished = True
        if self.scope_type != "http" or outcome != "completed" or self._disconnect_at is not None:
            return  # an exception or a cancellation shows on its own; a client that left ends it too
        if self._final_at is None:
            if self._start_at is None and self._first_body_at is None:
                text = "the app returned without sending a response"
            elif self._start_at is None:
                text = "the app returned without sending 'http.response.start'"
            else:
                text = "the app returned without sending the final body (more_body False)"
            self._report("http.unfinished", text, None)
        elif self._trailers and not self._trailers_done:
            self._report(
                "http.unfinished",
                "the start declared trailers, but the app returned without sending the last "
                "'http.response.trailers' (more_trailers False)",
                None,
            )


def _ignore_send(index: int, kind: str, message: dict[str, Any], sizes: Mapping[str, int] | None) -> None:
    """Scope types the spec does not define: only the message's shape is checked."""


def _ignore_receive(index: int, kind: str, message: dict[str, Any]) -> None:
    pass


def _iterable(value: object) -> bool:
    try:
        return hasattr(type(value), "__iter__")
    except Exception:  # pragma: no cover
        return False


def _verb(direction: str) -> str:
    return "sent" if direction == "send" else "received"


#: ``(direction, message)``, or ``(direction, message, {field: original size} or None)``
CheckedEvent = tuple[str, object] | tuple[str, object, Mapping[str, int] | None]


def check_events(
    scope_type: str,
    method: str | None,
    events: Iterable[CheckedEvent],
    outcome: str,
) -> list[Violation]:
    """Check a whole connection: ``(direction, message)`` pairs in order, and how it ended.

    An event may carry a third item, the ``{field: original size}`` of payloads the recording
    cut (as Spy's records and the store's events keep it).
    """
    checker = Checker(scope_type, method)
    feed = checker.feed
    for index, event in enumerate(events):
        sizes = event[2] if len(event) == 3 else None
        feed(index, cast(Direction, event[0]), event[1], sizes)
    checker.finish(outcome)
    return checker.violations
