"""The ASGI protocol rules the checker applies, one :class:`Rule` per kind of mistake.

Each rule has a short kebab-case id with the scope it applies to as a prefix (``http.``,
``websocket.``, ``lifespan.``; ``message.`` for any scope), a severity, and a one-line title
saying what the ASGI specification (HTTP & WebSocket 2.5, lifespan 2.0, and the extensions
document) asks for. :mod:`asgispy.analysis.checker` reports violations of them; docs/rules.md
explains each one and how to fix it.

Severities:

- ``error``: the spec says *must*, or the server cannot do what the app asked (it raises,
  drops the message or closes the connection);
- ``warning``: legal or tolerated by servers, but almost always a bug (or an extension the
  checker does not know);
- ``notice``: worth knowing, often deliberate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["RULES", "SEVERITIES", "Rule", "Severity"]

Severity = Literal["error", "warning", "notice"]

#: From the most to the least serious.
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "notice")


@dataclass(frozen=True, slots=True)
class Rule:
    """One thing the protocol asks of an app, and how bad it is not to do it."""

    id: str
    severity: Severity
    title: str


_RULES = (
    # Any scope ---------------------------------------------------------------------------------
    Rule(
        "message.malformed",
        "error",
        "A message must be a dict with a str 'type' key.",
    ),
    Rule(
        "message.unknown-type",
        "warning",
        "The message type is not one the spec (or a known extension) defines for this scope "
        "type and direction.",
    ),
    # HTTP --------------------------------------------------------------------------------------
    Rule(
        "http.start-twice",
        "error",
        "A response has exactly one 'http.response.start'; a second one cannot be sent.",
    ),
    Rule(
        "http.start-after-body",
        "error",
        "'http.response.start' must come before any response body, not after it.",
    ),
    Rule(
        "http.body-before-start",
        "error",
        "Response content ('http.response.body', pathsend, zerocopysend) needs an "
        "'http.response.start' first.",
    ),
    Rule(
        "http.after-final",
        "error",
        "Once a body with more_body False was sent the response is complete; the server "
        "ignores or refuses anything after it (except declared trailers).",
    ),
    Rule(
        "http.unfinished",
        "error",
        "The app returned without completing the response: a start and a final body "
        "(more_body False), then the trailers it declared.",
    ),
    Rule(
        "http.trailers-misplaced",
        "error",
        "'http.response.trailers' may only follow the final body, and only when the start "
        "said 'trailers': True.",
    ),
    Rule(
        "http.body-type",
        "error",
        "'body' must be a byte string (it defaults to b'' when missing).",
    ),
    Rule(
        "http.status-type",
        "error",
        "'status' of 'http.response.start' is required and must be an int.",
    ),
    Rule(
        "http.status-range",
        "error",
        "An HTTP status code is a number from 100 to 599.",
    ),
    Rule(
        "http.more-body-type",
        "warning",
        "'more_body' is a bool (servers only test whether it is true).",
    ),
    Rule(
        "http.headers-type",
        "error",
        "'headers' must be an iterable of [name, value] pairs of byte strings.",
    ),
    Rule(
        "http.header-case",
        "warning",
        "Header names the app sends must be lowercased (servers lowercase them on the way out;"
        " Django keeps their case on purpose).",
    ),
    Rule(
        "http.header-crlf",
        "error",
        "A header name or value must not contain CR, LF or NUL (that would split or end the header block).",
    ),
    Rule(
        "http.content-length",
        "error",
        "The body bytes sent must add up to the Content-Length the response declared.",
    ),
    Rule(
        "http.body-not-allowed",
        "error",
        "A 204 or 304 response has no body (RFC 9110); the body sent cannot reach the client.",
    ),
    Rule(
        "http.head-body",
        "notice",
        "A response to HEAD has no body: the server drops what was sent (frameworks often send it anyway).",
    ),
    Rule(
        "http.send-after-disconnect",
        "warning",
        "After 'http.disconnect' the client is gone: send() should be expected to raise "
        "(spec 2.4), and nothing sent arrives.",
    ),
    # WebSocket ---------------------------------------------------------------------------------
    Rule(
        "websocket.send-before-accept",
        "error",
        "Before 'websocket.accept' the app may only accept, close (reject) or send a denial response.",
    ),
    Rule(
        "websocket.accept-twice",
        "error",
        "A WebSocket is accepted once.",
    ),
    Rule(
        "websocket.after-close",
        "error",
        "After 'websocket.close' (or a complete denial response) the connection is over: "
        "nothing more can be sent.",
    ),
    Rule(
        "websocket.send-after-disconnect",
        "warning",
        "After 'websocket.disconnect' the socket is gone: send() should be expected to raise "
        "(spec 2.4), and nothing sent arrives.",
    ),
    Rule(
        "websocket.close-code",
        "error",
        "A close code is an int in 1000-1003, 1007-1014 or 3000-4999; 1004, 1005, 1006 and "
        "1015 must never be sent.",
    ),
    Rule(
        "websocket.close-reason-length",
        "warning",
        "A close reason fits in a control frame: at most 123 bytes of UTF-8.",
    ),
    Rule(
        "websocket.send-payload",
        "error",
        "In 'websocket.send' exactly one of 'bytes' and 'text' must be non-None.",
    ),
    Rule(
        "websocket.field-type",
        "error",
        "'text' and 'reason' are str, 'bytes' is a byte string, 'subprotocol' is a str or None.",
    ),
    Rule(
        "websocket.denial-order",
        "error",
        "A denial response ('websocket.http.response.start', then its bodies) replaces the "
        "accept: it comes before any accept, once, start first.",
    ),
    # Lifespan ----------------------------------------------------------------------------------
    Rule(
        "lifespan.startup-twice",
        "error",
        "Startup is answered once: one 'lifespan.startup.complete' or one 'lifespan.startup.failed'.",
    ),
    Rule(
        "lifespan.shutdown-twice",
        "error",
        "Shutdown is answered once: one 'lifespan.shutdown.complete' or one 'lifespan.shutdown.failed'.",
    ),
    Rule(
        "lifespan.out-of-order",
        "error",
        "'lifespan.startup.*' answers 'lifespan.startup' and 'lifespan.shutdown.*' answers "
        "'lifespan.shutdown': neither may come before the event it answers.",
    ),
    Rule(
        "lifespan.served-after-failure",
        "error",
        "After 'lifespan.startup.failed' the server should exit; here the app went on receiving events.",
    ),
)

#: Every rule, by id.
RULES: dict[str, Rule] = {rule.id: rule for rule in _RULES}
