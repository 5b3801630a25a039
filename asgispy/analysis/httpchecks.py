"""The HTTP rules of the protocol checker: one response, from its start to its last trailers.

:class:`HTTPChecks` follows an ``http`` scope for a :class:`~asgispy.analysis.checker.Checker`,
which hands it every well-formed message (a dict with a str ``type``) and reports what it
finds. It is apart from the core because it is a protocol of its own, with its own state:
where the start, the first body and the final body were, the declared Content-Length and
what was sent against it, the trailers promised and sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from asgispy.analysis.fieldchecks import (
    Reporter,
    check_body,
    check_headers,
    check_more,
    check_status,
    is_int,
)

__all__ = ["HTTPChecks"]

# The core spec's messages and the extensions document's.
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


class HTTPChecks:
    """Checks one HTTP connection's messages; ``head`` for a HEAD request (no body allowed)."""

    #: the message types the app sends and receives in an ``http`` scope
    sends: ClassVar[frozenset[str]] = _HTTP_SEND
    receives: ClassVar[frozenset[str]] = _HTTP_RECEIVE

    __slots__ = (
        "_disconnect_at",
        "_final_at",
        "_first_body_at",
        "_head",
        "_length",
        "_no_body",
        "_reporter",
        "_sent_bytes",
        "_start_at",
        "_status",
        "_trailers",
        "_trailers_done",
    )

    def __init__(self, reporter: Reporter, head: bool) -> None:
        self._head = head
        self._reporter = reporter
        # Where things happened (event indexes; None: not yet).
        self._disconnect_at: int | None = None  # http.disconnect received
        self._start_at: int | None = None
        self._first_body_at: int | None = None
        self._final_at: int | None = None  # the response is complete (but for declared trailers)
        self._status: int | None = None
        self._length: int | None = None  # the declared Content-Length, while it is checked
        self._sent_bytes = 0
        self._no_body = False  # HEAD, 204 or 304
        self._trailers = False
        self._trailers_done = False

    def receive(self, index: int, kind: str, message: dict[str, Any]) -> None:
        """A request body, or the client gone (after which nothing should be sent)."""
        if kind == "http.request":
            return
        if kind == "http.disconnect":
            if self._disconnect_at is None:
                self._disconnect_at = index
            return
        self._reporter.report_unknown(index, kind, "receive")

    def send(self, index: int, kind: str, message: dict[str, Any], sizes: Mapping[str, int] | None) -> None:
        """A response message; ``sizes`` (as in ``Checker.feed``) for a body the recording cut."""
        if kind not in _HTTP_SEND:
            self._reporter.report_unknown(index, kind, "send")
            return
        if self._final_at is not None:
            if kind == "http.response.trailers" and self._trailers and not self._trailers_done:
                check_headers(self._reporter, index, message.get("headers", ()), kind)
                if not message.get("more_trailers", False):
                    self._trailers_done = True
                return
            last = "its trailers" if self._trailers_done else f"the final body (event {self._final_at})"
            self._reporter.report_once(
                "http.after-final", f"{kind!r} was sent after the response was complete with {last}", index
            )
            return
        if self._disconnect_at is not None:
            self._reporter.report_once(
                "http.send-after-disconnect",
                f"{kind!r} was sent after the app received 'http.disconnect' (event {self._disconnect_at})",
                index,
            )
        if kind == "http.response.body":
            size = check_body(self._reporter, index, message)
            if sizes is not None and size is not None:
                full = sizes.get("body")
                if is_int(full):
                    size = full
            more = message.get("more_body", False)
            if more is not True and more is not False:
                more = check_more(self._reporter, index, message, kind)
            self._content(index, kind, size, not more)
        elif kind == "http.response.start":
            self._start(index, message, kind)
        elif kind == "http.response.trailers":
            check_headers(self._reporter, index, message.get("headers", ()), kind)
            where = (
                "the final body has not been sent yet"
                if self._trailers
                else "'http.response.start' did not declare 'trailers': True"
            )
            self._reporter.report_once(
                "http.trailers-misplaced", f"'http.response.trailers' was sent, but {where}", index
            )
        elif kind == "http.response.pathsend":
            self._length = None  # the file's size is not in the message
            self._content(index, kind, None, True)
        elif kind == "http.response.zerocopysend":
            self._length = None
            self._content(index, kind, None, not check_more(self._reporter, index, message, kind))
        elif kind == "http.response.push":
            check_headers(self._reporter, index, message.get("headers", ()), kind)
        # http.response.early_hint and http.response.debug: nothing to check here

    def finish(self, outcome: str) -> None:
        """The connection ended (once, and not ``open``): a response left unfinished."""
        if outcome != "completed" or self._disconnect_at is not None:
            return  # an exception or a cancellation shows on its own; a client that left ends it too
        if self._final_at is None:
            if self._start_at is None and self._first_body_at is None:
                text = "the app returned without sending a response"
            elif self._start_at is None:
                text = "the app returned without sending 'http.response.start'"
            else:
                text = "the app returned without sending the final body (more_body False)"
            self._reporter.report("http.unfinished", text, None)
        elif self._trailers and not self._trailers_done:
            self._reporter.report(
                "http.unfinished",
                "the start declared trailers, but the app returned without sending the last "
                "'http.response.trailers' (more_trailers False)",
                None,
            )

    def _start(self, index: int, message: dict[str, Any], kind: str) -> None:
        if self._start_at is not None:
            self._reporter.report_once(
                "http.start-twice",
                f"a second 'http.response.start' (the first was event {self._start_at})",
                index,
            )
            return
        self._start_at = index
        if self._first_body_at is not None:
            self._reporter.report_once(
                "http.start-after-body",
                f"'http.response.start' came after the response body had begun (event {self._first_body_at})",
                index,
            )
        status = self._status = check_status(self._reporter, index, message, kind)
        length = check_headers(self._reporter, index, message.get("headers", ()), kind, want_length=True)
        self._trailers = bool(message.get("trailers", False))
        self._no_body = self._head or status == 204 or status == 304
        if length is not None and not self._no_body:
            self._length = length

    def _content(self, index: int, kind: str, size: int | None, final: bool) -> None:
        """Response content (a body, a path, a file); ``size`` None when unknown or not bytes."""
        if self._first_body_at is None:
            self._first_body_at = index
        if self._start_at is None:
            # Without a start nothing is sent and nothing completes: the start may still come.
            self._reporter.report_once(
                "http.body-before-start", f"{kind!r} was sent before 'http.response.start'", index
            )
            return
        if size:
            if self._no_body:
                if self._head:
                    self._reporter.report_once(
                        "http.head-body",
                        f"{size} body bytes were sent in answer to a HEAD request; the server drops them",
                        index,
                    )
                else:
                    self._reporter.report_once(
                        "http.body-not-allowed",
                        f"a {self._status} response has no body, but {size} bytes were sent",
                        index,
                    )
            length = self._length
            if length is not None:
                sent = self._sent_bytes = self._sent_bytes + size
                if sent > length:
                    self._length = None  # reported once, and never again as too few
                    self._reporter.report(
                        "http.content-length", f"Content-Length says {length} bytes, {sent} were sent", index
                    )
        if final:
            self._final_at = index
            length = self._length
            if length is not None and self._sent_bytes < length:
                self._reporter.report(
                    "http.content-length",
                    f"Content-Length says {length} bytes, only {self._sent_bytes} were sent "
                    "by the final body",
                    index,
                )
