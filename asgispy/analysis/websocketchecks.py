"""The WebSocket rules of the protocol checker: the handshake, the frames, the close.

:class:`WebSocketChecks` follows a ``websocket`` scope for a
:class:`~asgispy.analysis.checker.Checker`, which hands it every well-formed message. It is
apart from the core because it is a protocol of its own, with its own state: whether and where
the handshake was accepted, or denied with an HTTP response (the denial extension), and
where the connection closed; RFC 6455's limits on close codes and reasons are checked here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from asgispy.analysis.fieldchecks import (
    BYTES_LIKE,
    MISSING,
    Reporter,
    check_body,
    check_headers,
    check_more,
    check_status,
    is_int,
    show,
)

__all__ = ["WebSocketChecks"]

# The core spec's messages and the denial response extension's.
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

#: Close codes that must never be put in a close frame (RFC 6455 section 7.4.1).
_RESERVED_CLOSE_CODES = frozenset({1004, 1005, 1006, 1015})


class WebSocketChecks:
    """Checks one WebSocket connection's messages."""

    #: the message types the app sends and receives in a ``websocket`` scope
    sends: ClassVar[frozenset[str]] = _WS_SEND
    receives: ClassVar[frozenset[str]] = _WS_RECEIVE

    __slots__ = ("_accepted_at", "_closed_at", "_denied_at", "_disconnect_at", "_reporter")

    def __init__(self, reporter: Reporter) -> None:
        self._reporter = reporter
        # Where things happened (event indexes; None: not yet).
        self._disconnect_at: int | None = None  # websocket.disconnect received
        self._accepted_at: int | None = None
        self._denied_at: int | None = None  # websocket.http.response.start
        self._closed_at: int | None = None  # websocket.close, or the final denial body

    def receive(self, index: int, kind: str, message: dict[str, Any]) -> None:
        """A frame, the handshake's start, or the client gone."""
        if kind == "websocket.receive" or kind == "websocket.connect":
            return
        if kind == "websocket.disconnect":
            if self._disconnect_at is None:
                self._disconnect_at = index
            return
        self._reporter.report_unknown(index, kind, "receive")

    def send(self, index: int, kind: str, message: dict[str, Any], sizes: Mapping[str, int] | None) -> None:
        """The handshake's answer (accept or a denial), a frame, or the close."""
        if kind not in _WS_SEND:
            self._reporter.report_unknown(index, kind, "send")
            return
        if self._closed_at is not None:
            self._reporter.report_once(
                "websocket.after-close",
                f"{kind!r} was sent after the connection was closed (event {self._closed_at})",
                index,
            )
            return
        if self._disconnect_at is not None:
            self._reporter.report_once(
                "websocket.send-after-disconnect",
                f"{kind!r} was sent after the app received 'websocket.disconnect' "
                f"(event {self._disconnect_at})",
                index,
            )
        if kind == "websocket.send":
            if self._accepted_at is None:
                self._reporter.report_once(
                    "websocket.send-before-accept",
                    "'websocket.send' was sent before 'websocket.accept'",
                    index,
                )
            self._payload(index, message)
        elif kind == "websocket.accept":
            self._accept(index, message, kind)
        elif kind == "websocket.close":
            # Before accept, this is the spec's way to reject the handshake (403): no violation.
            if self._denied_at is not None:
                self._reporter.report_once(
                    "websocket.denial-order",
                    "'websocket.close' in the middle of a denial response "
                    f"(begun at event {self._denied_at})",
                    index,
                )
            self._closed_at = index
            self._close(index, message)
        elif kind == "websocket.http.response.start":
            if self._accepted_at is not None:
                self._reporter.report_once(
                    "websocket.denial-order",
                    f"a denial response after 'websocket.accept' (event {self._accepted_at}): "
                    "the handshake is already complete",
                    index,
                )
            elif self._denied_at is not None:
                self._reporter.report_once(
                    "websocket.denial-order",
                    f"a second 'websocket.http.response.start' (the first was event {self._denied_at})",
                    index,
                )
            else:
                self._denied_at = index
            check_status(self._reporter, index, message, kind)
            check_headers(self._reporter, index, message.get("headers", ()), kind)
        else:  # websocket.http.response.body
            check_body(self._reporter, index, message)
            more = message.get("more_body", False)
            if more is not True and more is not False:
                more = check_more(self._reporter, index, message, kind)
            if self._denied_at is None or self._accepted_at is not None:
                self._reporter.report_once(
                    "websocket.denial-order",
                    "'websocket.http.response.body' was sent without a denial response begun by "
                    "'websocket.http.response.start'",
                    index,
                )
            elif not more:
                self._closed_at = index

    def finish(self, outcome: str) -> None:
        """No WebSocket rule waits for the end: a connection may close any way it likes."""

    def _accept(self, index: int, message: dict[str, Any], kind: str) -> None:
        if self._accepted_at is not None:
            self._reporter.report_once(
                "websocket.accept-twice",
                f"a second 'websocket.accept' (the first was event {self._accepted_at})",
                index,
            )
            return
        if self._denied_at is not None:
            self._reporter.report_once(
                "websocket.denial-order",
                f"'websocket.accept' after a denial response began (event {self._denied_at})",
                index,
            )
            return
        self._accepted_at = index
        subprotocol = message.get("subprotocol")
        if subprotocol is not None and not isinstance(subprotocol, str):
            self._reporter.report(
                "websocket.field-type", f"'subprotocol' is {show(subprotocol)}, not a str or None", index
            )
        headers = message.get("headers", MISSING)
        if headers is not MISSING:
            check_headers(self._reporter, index, headers, kind)

    def _payload(self, index: int, message: dict[str, Any]) -> None:
        text = message.get("text")
        data = message.get("bytes")
        if text is None and data is None:
            self._reporter.report(
                "websocket.send-payload", "'websocket.send' has neither 'text' nor 'bytes'", index
            )
            return
        if text is not None and data is not None:
            self._reporter.report(
                "websocket.send-payload",
                "'websocket.send' has both 'text' and 'bytes'; exactly one may be set",
                index,
            )
        if text is not None and not isinstance(text, str):
            self._reporter.report("websocket.field-type", f"'text' is {show(text)}, not a str", index)
        if data is not None and not isinstance(data, BYTES_LIKE):
            self._reporter.report("websocket.field-type", f"'bytes' is {show(data)}, not bytes", index)

    def _close(self, index: int, message: dict[str, Any]) -> None:
        code = message.get("code", 1000)
        if not is_int(code):
            self._reporter.report("websocket.close-code", f"close code {show(code)} is not an int", index)
        elif code in _RESERVED_CLOSE_CODES:
            self._reporter.report(
                "websocket.close-code",
                f"close code {int(code)} is reserved for reporting; it must never be sent in a close frame",
                index,
            )
        elif not (1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999):
            self._reporter.report(
                "websocket.close-code",
                f"close code {int(code)} is outside 1000-1003, 1007-1014 and 3000-4999",
                index,
            )
        reason = message.get("reason")
        if reason is None:
            return
        if not isinstance(reason, str):
            self._reporter.report(
                "websocket.field-type", f"close 'reason' is {show(reason)}, not a str", index
            )
        elif len(reason) > 30:  # 30 characters are at most 120 bytes of UTF-8
            size = len(reason.encode("utf-8", "surrogatepass"))
            if size > 123:
                self._reporter.report(
                    "websocket.close-reason-length",
                    f"the close reason is {size} bytes of UTF-8; at most 123 fit in a close frame",
                    index,
                )
