"""The protocol checker, rule by rule: each one fires on the right event, and only when it should.

Every rule in :data:`asgispy.analysis.rules.RULES` has at least one case in ``CASES`` (a short
connection that breaks it, and the index of the event at fault); the negative cases further
down are correct exchanges, including the protocol's legitimate corners, that must report
nothing (or, for HEAD with a body, only a notice). A property test feeds junk and checks that
nothing ever raises.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asgispy.analysis.checker import CheckedEvent, Checker, Violation, check_events
from asgispy.analysis.rules import RULES, SEVERITIES, Rule

ROOT = Path(__file__).resolve().parent.parent

# Message builders ---------------------------------------------------------------------------

REQUEST: dict[str, Any] = {"type": "http.request", "body": b"", "more_body": False}
DISCONNECT: dict[str, Any] = {"type": "http.disconnect"}
CONNECT: dict[str, Any] = {"type": "websocket.connect"}
ACCEPT: dict[str, Any] = {"type": "websocket.accept"}
WS_GONE: dict[str, Any] = {"type": "websocket.disconnect", "code": 1000}
STARTUP: dict[str, Any] = {"type": "lifespan.startup"}
SHUTDOWN: dict[str, Any] = {"type": "lifespan.shutdown"}
STARTED: dict[str, Any] = {"type": "lifespan.startup.complete"}
START_FAILED: dict[str, Any] = {"type": "lifespan.startup.failed", "message": "no database"}
STOPPED: dict[str, Any] = {"type": "lifespan.shutdown.complete"}
STOP_FAILED: dict[str, Any] = {"type": "lifespan.shutdown.failed", "message": "stuck"}


def start(status: object = 200, headers: object = None, **extra: object) -> dict[str, Any]:
    return {
        "type": "http.response.start",
        "status": status,
        "headers": [] if headers is None else headers,
        **extra,
    }


def body(data: object = b"", more: object = False) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": more}


def sized(length: int) -> dict[str, Any]:
    return start(headers=[(b"content-type", b"text/plain"), (b"content-length", str(length).encode())])


def trailers(more: bool = False) -> dict[str, Any]:
    return {"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")], "more_trailers": more}


def ws_text(text: object = "hi", data: object = None) -> dict[str, Any]:
    return {"type": "websocket.send", "text": text, "bytes": data}


def ws_close(code: object = 1000, reason: object = "") -> dict[str, Any]:
    return {"type": "websocket.close", "code": code, "reason": reason}


def deny(status: int = 401) -> dict[str, Any]:
    return {
        "type": "websocket.http.response.start",
        "status": status,
        "headers": [(b"content-type", b"text/plain")],
    }


def deny_body(data: bytes = b"no entry", more: bool = False) -> dict[str, Any]:
    return {"type": "websocket.http.response.body", "body": data, "more_body": more}


def send(message: object) -> CheckedEvent:
    return ("send", message)


def recv(message: object) -> CheckedEvent:
    return ("receive", message)


def found(violations: list[Violation]) -> list[tuple[str, int | None]]:
    return [(v.rule, v.event) for v in violations]


def run(
    scope: str, events: list[CheckedEvent], outcome: str = "completed", method: str | None = "GET"
) -> list[Violation]:
    return check_events(scope, method, events, outcome)


# Every rule: a connection that breaks it ------------------------------------------------------


@dataclass(frozen=True)
class Case:
    rule: str
    scope: str
    events: list[CheckedEvent]
    event: int | None
    says: str = ""  # a piece of the expected message
    method: str = "GET"
    outcome: str = "completed"
    id: str = ""


CASES = [
    # Any scope
    Case("message.malformed", "http", [recv(REQUEST), send(["http.response.start"])], 1, "a list of 1 items"),
    Case("message.malformed", "http", [recv(REQUEST), send(None)], 1, "None, not a dict", id="none"),
    Case("message.malformed", "websocket", [recv("websocket.connect")], 0, "received message", id="received"),
    Case(
        "message.malformed", "http", [recv(REQUEST), send({"status": 200})], 1, "has no 'type'", id="no-type"
    ),
    Case("message.malformed", "lifespan", [recv({"type": 3})], 0, "'type' that is 3", id="int-type"),
    Case(
        "message.unknown-type", "http", [recv(REQUEST), send({"type": "http.response.bogus"})], 1, "known ext"
    ),
    Case(
        "message.unknown-type",
        "http",
        [recv(REQUEST), send(REQUEST)],
        1,
        "the server sends to the app",
        id="wrong-direction",
    ),
    Case(
        "message.unknown-type",
        "websocket",
        [recv(REQUEST)],
        0,
        "belongs to the http protocol",
        id="other-scope",
    ),
    Case(
        "message.unknown-type",
        "lifespan",
        [recv(STARTUP), send({"type": "lifespan.startup.done"})],
        1,
        "lifespan protocol",
        id="lifespan",
    ),
    # HTTP
    Case(
        "http.start-twice", "http", [recv(REQUEST), send(start()), send(start()), send(body())], 2, "event 1"
    ),
    Case(
        "http.start-after-body",
        "http",
        [recv(REQUEST), send(body(b"x", more=True)), send(start()), send(body())],
        2,
        "(event 1)",
    ),
    Case(
        "http.body-before-start",
        "http",
        [recv(REQUEST), send(body(b"hi"))],
        1,
        "before 'http.response.start'",
    ),
    Case(
        "http.after-final",
        "http",
        [recv(REQUEST), send(start()), send(body()), send(body(b"x"))],
        3,
        "event 2",
    ),
    Case(
        "http.after-final",
        "http",
        [recv(REQUEST), send(start()), send(body()), send(trailers())],
        3,
        "'http.response.trailers' was sent after",
        id="undeclared-trailers",
    ),
    Case(
        "http.after-final",
        "http",
        [recv(REQUEST), send(start(trailers=True)), send(body()), send(trailers()), send(trailers())],
        4,
        "with its trailers",
        id="after-trailers",
    ),
    Case("http.unfinished", "http", [recv(REQUEST), send(start())], None, "final body"),
    Case("http.unfinished", "http", [recv(REQUEST)], None, "without sending a response", id="nothing"),
    Case(
        "http.unfinished",
        "http",
        [recv(REQUEST), send(start(trailers=True)), send(body(b"x"))],
        None,
        "declared trailers",
        id="trailers",
    ),
    Case(
        "http.trailers-misplaced",
        "http",
        [recv(REQUEST), send(start(trailers=True)), send(trailers()), send(body())],
        2,
        "final body has not been sent",
    ),
    Case(
        "http.trailers-misplaced",
        "http",
        [recv(REQUEST), send(start()), send(body(b"a", more=True)), send(trailers())],
        3,
        "did not declare",
        id="undeclared",
    ),
    Case(
        "http.body-type", "http", [recv(REQUEST), send(start()), send(body("text"))], 2, "'text', not bytes"
    ),
    Case("http.body-type", "http", [recv(REQUEST), send(start()), send(body(None))], 2, "None", id="none"),
    Case(
        "http.status-type", "http", [recv(REQUEST), send(start("200")), send(body())], 1, "'200', not an int"
    ),
    Case("http.status-type", "http", [recv(REQUEST), send(start(True)), send(body())], 1, "True", id="bool"),
    Case(
        "http.status-type",
        "http",
        [recv(REQUEST), send({"type": "http.response.start"}), send(body())],
        1,
        "has no 'status'",
        id="missing",
    ),
    Case("http.status-range", "http", [recv(REQUEST), send(start(700)), send(body())], 1, "700 is outside"),
    Case("http.status-range", "http", [recv(REQUEST), send(start(99)), send(body())], 1, "99", id="low"),
    Case(
        "http.more-body-type",
        "http",
        [recv(REQUEST), send(start()), send(body(b"a", more="yes")), send(body())],
        2,
        "'yes', not a bool",
    ),
    Case(
        "http.headers-type",
        "http",
        [recv(REQUEST), send(start(headers={b"content-type": b"text/plain"})), send(body())],
        1,
        "a dict of 1 items",
    ),
    Case(
        "http.headers-type",
        "http",
        [recv(REQUEST), send(start(headers=[("content-type", "text/plain")])), send(body())],
        1,
        "(str, str); names and values must be bytes",
        id="str-pair",
    ),
    Case(
        "http.headers-type",
        "http",
        [recv(REQUEST), send(start(headers=[(b"a", b"1", b"2")])), send(body())],
        1,
        "header #0",
        id="triple",
    ),
    Case(
        "http.headers-type",
        "http",
        [recv(REQUEST), send(start(headers=b"content-type: text/plain")), send(body())],
        1,
        "is b'content-type: text/plain', not a list",
        id="bytes",
    ),
    Case(
        "http.header-case",
        "http",
        [
            recv(REQUEST),
            send(start(headers=[(b"x-ok", b"1"), (b"Content-Type", b"text/plain")])),
            send(body()),
        ],
        1,
        "b'Content-Type'",
    ),
    Case(
        "http.header-crlf",
        "http",
        [recv(REQUEST), send(start(headers=[(b"x-injected", b"a\r\nset-cookie: x=1")])), send(body())],
        1,
        "in its value",
    ),
    Case(
        "http.header-crlf",
        "http",
        [recv(REQUEST), send(start(headers=[(b"x-\x00", b"1")])), send(body())],
        1,
        "in its name",
        id="nul-name",
    ),
    Case(
        "http.content-length",
        "http",
        [recv(REQUEST), send(sized(10)), send(body(b"0123456789", more=True)), send(body(b"abcd"))],
        3,
        "Content-Length says 10 bytes, 14 were sent",
    ),
    Case(
        "http.content-length",
        "http",
        [recv(REQUEST), send(sized(10)), send(body(b"0123", more=True)), send(body(b"", more=False))],
        3,
        "only 4 were sent",
        id="too-few",
    ),
    Case(
        "http.body-not-allowed",
        "http",
        [recv(REQUEST), send(start(204)), send(body(b"surprise"))],
        2,
        "a 204 response has no body, but 8 bytes",
    ),
    Case(
        "http.body-not-allowed",
        "http",
        [recv(REQUEST), send(start(304)), send(body(b"x"))],
        2,
        "304",
        id="304",
    ),
    Case(
        "http.head-body",
        "http",
        [recv(REQUEST), send(start()), send(body(b"hello"))],
        2,
        "5 body bytes",
        method="HEAD",
    ),
    Case(
        "http.send-after-disconnect",
        "http",
        [recv(REQUEST), recv(DISCONNECT), send(start()), send(body())],
        2,
        "(event 1)",
    ),
    # WebSocket
    Case("websocket.send-before-accept", "websocket", [recv(CONNECT), send(ws_text())], 1, "before"),
    Case("websocket.accept-twice", "websocket", [recv(CONNECT), send(ACCEPT), send(ACCEPT)], 2, "event 1"),
    Case(
        "websocket.after-close",
        "websocket",
        [recv(CONNECT), send(ACCEPT), send(ws_close()), send(ws_text())],
        3,
        "closed (event 2)",
    ),
    Case(
        "websocket.after-close",
        "websocket",
        [recv(CONNECT), send(deny()), send(deny_body()), send(ACCEPT)],
        3,
        "'websocket.accept' was sent after",
        id="after-denial",
    ),
    Case(
        "websocket.after-close",
        "websocket",
        [recv(CONNECT), send(ws_close(1008)), send(ACCEPT)],
        2,
        "(event 1)",
        id="accept-after-reject",
    ),
    Case(
        "websocket.send-after-disconnect",
        "websocket",
        [recv(CONNECT), send(ACCEPT), recv(WS_GONE), send(ws_text())],
        3,
        "(event 2)",
    ),
    Case(
        "websocket.close-code",
        "websocket",
        [recv(CONNECT), send(ACCEPT), send(ws_close(1006))],
        2,
        "1006 is reserved",
    ),
    Case(
        "websocket.close-code",
        "websocket",
        [recv(CONNECT), send(ACCEPT), send(ws_close(2000))],
        2,
        "2000",
        id="2000",
    ),
    Case(
        "websocket.close-code",
        "websocket",
        [recv(CONNECT), send(ACCEPT), send(ws_close("1000"))],
        2,
        "not an int",
        id="str",
    ),
    Case(
        "websocket.close-reason-length",
        "websocket",
        [recv(CONNECT), send(ACCEPT), send(ws_close(1000, "é" * 62))],
        2,
        "124 bytes",
    ),
    Case(
        "websocket.send-payload",
        "websocket",
        [recv(CONNECT), send(ACCEPT), send(ws_text("a", b"b"))],
        2,
        "both",
    ),
    Case(
        "websocket.send-payload",
        "websocket",
        [recv(CONNECT), send(ACCEPT), send({"type": "websocket.send"})],
        2,
        "neither",
        id="neither",
    ),
    Case(
        "websocket.field-type",
        "websocket",
        [recv(CONNECT), send(ACCEPT), send(ws_text(b"bytes in text"))],
        2,
        "'text' is b'bytes in text', not a str",
    ),
    Case(
        "websocket.field-type",
        "websocket",
        [recv(CONNECT), send(ACCEPT), send({"type": "websocket.send", "bytes": "text in bytes"})],
        2,
        "'bytes' is",
        id="bytes",
    ),
    Case(
        "websocket.field-type",
        "websocket",
        [recv(CONNECT), send({"type": "websocket.accept", "subprotocol": 1})],
        1,
        "subprotocol",
        id="subprotocol",
    ),
    Case(
        "websocket.field-type",
        "websocket",
        [recv(CONNECT), send(ACCEPT), send(ws_close(1000, b"bye"))],
        2,
        "reason",
        id="reason",
    ),
    Case(
        "websocket.denial-order",
        "websocket",
        [recv(CONNECT), send(ACCEPT), send(deny())],
        2,
        "after 'websocket.accept' (event 1)",
    ),
    Case(
        "websocket.denial-order",
        "websocket",
        [recv(CONNECT), send(deny_body())],
        1,
        "without a denial response begun",
        id="body-first",
    ),
    Case(
        "websocket.denial-order",
        "websocket",
        [recv(CONNECT), send(deny()), send(ACCEPT)],
        2,
        "after a denial response began",
        id="accept-during-denial",
    ),
    Case(
        "websocket.denial-order",
        "websocket",
        [recv(CONNECT), send(deny()), send(ws_close())],
        2,
        "in the middle of a denial response",
        id="close-during-denial",
    ),
    Case(
        "websocket.denial-order",
        "websocket",
        [recv(CONNECT), send(deny()), send(deny())],
        2,
        "a second",
        id="twice",
    ),
    # Lifespan
    Case(
        "lifespan.startup-twice",
        "lifespan",
        [recv(STARTUP), send(STARTED), send(STARTED)],
        2,
        "after 'lifespan.startup.complete' (event 1)",
    ),
    Case(
        "lifespan.startup-twice",
        "lifespan",
        [recv(STARTUP), send(START_FAILED), send(STARTED)],
        2,
        "failed",
        id="both",
    ),
    Case(
        "lifespan.shutdown-twice",
        "lifespan",
        [recv(STARTUP), send(STARTED), recv(SHUTDOWN), send(STOP_FAILED), send(STOPPED)],
        4,
        "answered once",
    ),
    Case(
        "lifespan.out-of-order",
        "lifespan",
        [send(STARTED), recv(STARTUP), recv(SHUTDOWN), send(STOPPED)],
        0,
        "before the app received 'lifespan.startup'",
    ),
    Case(
        "lifespan.out-of-order",
        "lifespan",
        [recv(STARTUP), send(STARTED), send(STOPPED)],
        2,
        "'lifespan.shutdown'",
        id="shutdown",
    ),
    Case(
        "lifespan.served-after-failure",
        "lifespan",
        [recv(STARTUP), send(START_FAILED), recv(SHUTDOWN), send(STOPPED)],
        2,
        "(event 1)",
    ),
]


def _case_id(case: Case) -> str:
    return f"{case.rule}-{case.id}" if case.id else case.rule


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_rule_fires_on_the_event_at_fault(case: Case) -> None:
    violations = run(case.scope, case.events, case.outcome, case.method)
    hits = [v for v in violations if v.rule == case.rule]
    assert hits, found(violations)
    assert hits[0].event == case.event, found(violations)
    assert hits[0].severity == RULES[case.rule].severity
    assert case.says in hits[0].message


def test_every_rule_has_a_case() -> None:
    assert {case.rule for case in CASES} == set(RULES)


def test_every_rule_is_documented() -> None:
    docs = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    missing = [rule for rule in RULES if f"`{rule}`" not in docs]
    assert not missing


def test_the_catalogue() -> None:
    for rule_id, rule in RULES.items():
        assert isinstance(rule, Rule) and rule.id == rule_id
        assert rule.severity in SEVERITIES
        prefix, _, name = rule_id.partition(".")
        assert prefix in ("message", "http", "websocket", "lifespan") and name
        assert name == name.lower() and " " not in name and "_" not in name
        assert rule.title.endswith(".") and "\n" not in rule.title
    with pytest.raises(AttributeError):
        RULES["http.start-twice"].severity = "notice"  # type: ignore[misc]


def test_severities_as_specified() -> None:
    severity = {rule.id: rule.severity for rule in RULES.values()}
    warnings = {
        "message.unknown-type",
        "http.more-body-type",
        "http.header-case",  # Django keeps header case on purpose: not an error
        "http.send-after-disconnect",
        "websocket.send-after-disconnect",
        "websocket.close-reason-length",
    }
    assert {r for r, s in severity.items() if s == "warning"} == warnings
    assert {r for r, s in severity.items() if s == "notice"} == {"http.head-body"}


# Sequence rules fire once; field rules on every message --------------------------------------


def test_sequence_rules_are_reported_once() -> None:
    events = [recv(REQUEST), send(start()), send(body()), send(body(b"a")), send(body(b"b")), send(start())]
    assert found(run("http", events)) == [("http.after-final", 3)]
    ws = [recv(CONNECT), send(ws_text()), send(ws_text()), send(ACCEPT)]
    assert found(run("websocket", ws)) == [("websocket.send-before-accept", 1)]


def test_field_rules_are_reported_per_message() -> None:
    events = [
        recv(REQUEST),
        send(start()),
        send(body("a", more=True)),
        send(body("b", more=True)),
        send(body()),
    ]
    assert found(run("http", events)) == [("http.body-type", 2), ("http.body-type", 3)]


def test_one_message_can_break_several_rules() -> None:
    bad = start("ok", headers=[(b"X-A", b"1\n"), ("x-b", b"2")])
    assert sorted(found(run("http", [recv(REQUEST), send(bad), send(body())]))) == [
        ("http.header-case", 1),
        ("http.header-crlf", 1),
        ("http.headers-type", 1),
        ("http.status-type", 1),
    ]


def test_after_final_wins_over_send_after_disconnect() -> None:
    events = [recv(REQUEST), send(start()), send(body()), recv(DISCONNECT), send(body(b"late"))]
    assert found(run("http", events)) == [("http.after-final", 4)]


@pytest.mark.parametrize("outcome", ["exception", "cancelled", "open", "cut off"])
def test_unfinished_only_when_the_app_returned(outcome: str) -> None:
    assert run("http", [recv(REQUEST), send(start())], outcome) == []


def test_unfinished_not_when_the_client_left() -> None:
    assert run("http", [recv(REQUEST), recv(DISCONNECT)]) == []


# Content-Length --------------------------------------------------------------------------------


def test_content_length_too_many_is_reported_as_soon_as_it_happens() -> None:
    events = [
        recv(REQUEST),
        send(sized(4)),
        send(body(b"12", more=True)),
        send(body(b"345", more=True)),
        send(body(b"6", more=True)),
        send(body()),
    ]
    violations = run("http", events)
    assert found(violations) == [("http.content-length", 3)]
    assert violations[0].message == "Content-Length says 4 bytes, 5 were sent"


def test_content_length_counts_what_the_recording_cut() -> None:
    events: list[CheckedEvent] = [
        recv(REQUEST),
        send(sized(5000)),
        ("send", body(b"x" * 100), {"body": 5000}),
    ]
    assert run("http", events) == []
    events = [recv(REQUEST), send(sized(5000)), ("send", body(b"x" * 100), None)]
    assert found(run("http", events)) == [("http.content-length", 2)]


@pytest.mark.parametrize(
    ("status", "method"), [(204, "GET"), (304, "GET"), (200, "HEAD")], ids=["204", "304", "HEAD"]
)
def test_content_length_is_not_checked_where_no_body_goes(status: int, method: str) -> None:
    head = start(status, headers=[(b"content-length", b"1234")])
    assert run("http", [recv(REQUEST), send(head), send(body())], method=method) == []


@pytest.mark.parametrize("value", [b"", b"abc", b"-1", b"1" * 40, b"12, 12"])
def test_content_length_that_is_not_a_number_is_not_checked(value: bytes) -> None:
    head = start(headers=[(b"content-length", value)])
    assert run("http", [recv(REQUEST), send(head), send(body(b"hello"))]) == []


def test_content_length_header_name_in_any_case() -> None:
    head = start(headers=[(b"Content-Length", b" 3 ")])
    violations = run("http", [recv(REQUEST), send(head), send(body(b"four"))])
    assert found(violations) == [("http.header-case", 1), ("http.content-length", 2)]


# No false alarms -----------------------------------------------------------------------------


def test_a_correct_http_exchange() -> None:
    events = [
        recv({"type": "http.request", "body": b'{"a":', "more_body": True}),
        recv({"type": "http.request", "body": b"1}", "more_body": False}),
        send(start(200, [(b"content-type", b"application/json"), (b"content-length", b"7")])),
        send(body(b'{"b":2}')),
        recv(DISCONNECT),
    ]
    assert run("http", events, method="POST") == []


def test_streaming_with_many_chunks() -> None:
    chunks = [send(body(b"chunk %04d\n" % i, more=True)) for i in range(2000)]
    events = [recv(REQUEST), send(start(headers=[(b"content-type", b"text/plain")])), *chunks, send(body())]
    assert run("http", events) == []
    declared = [recv(REQUEST), send(sized(11 * 2000)), *chunks, send({"type": "http.response.body"})]
    assert run("http", declared) == []


def test_optional_fields_may_be_missing() -> None:
    events = [
        recv({"type": "http.request"}),
        send({"type": "http.response.start", "status": 200}),
        send(body()),
    ]
    assert run("http", events) == []
    assert run("http", [recv(REQUEST), send(start()), send({"type": "http.response.body"})]) == []


def test_bytes_like_bodies_and_int_subclass_statuses() -> None:
    from http import HTTPStatus

    events = [
        recv(REQUEST),
        send(start(HTTPStatus.OK, [(bytearray(b"x-a"), bytearray(b"1")), [b"x-b", b"2"]])),
        send(body(bytearray(b"ab"), more=True)),
        send(body(memoryview(b"cd"))),
    ]
    assert run("http", events) == []


def test_head_with_a_body_is_only_a_notice() -> None:
    # What Starlette does on purpose: the same response as GET, body included; the server drops it.
    head = start(200, [(b"content-type", b"text/plain"), (b"content-length", b"11")])
    violations = run("http", [recv(REQUEST), send(head), send(body(b"hello world"))], method="HEAD")
    assert [(v.rule, v.severity, v.event) for v in violations] == [("http.head-body", "notice", 2)]
    assert run("http", [recv(REQUEST), send(head), send(body())], method="head") == []


def test_head_wins_over_204() -> None:
    violations = run("http", [recv(REQUEST), send(start(204)), send(body(b"x"))], method="HEAD")
    assert found(violations) == [("http.head-body", 2)]


def test_declared_trailers() -> None:
    events = [
        recv(REQUEST),
        send(start(trailers=True)),
        send(body(b"data", more=True)),
        send(body(b"", more=False)),
        send(trailers(more=True)),
        send(trailers(more=False)),
    ]
    assert run("http", events) == []


def test_extensions() -> None:
    events = [
        recv(REQUEST),
        send({"type": "http.response.debug", "info": {"template": "index.html"}}),
        send({"type": "http.response.early_hint", "links": [b"</style.css>; rel=preload"]}),
        send(start()),
        send({"type": "http.response.push", "path": "/style.css", "headers": []}),
        send({"type": "http.response.zerocopysend", "file": 3, "count": 10, "more_body": True}),
        send(body(b"more", more=True)),
        send({"type": "http.response.zerocopysend", "file": 3}),
    ]
    assert run("http", events) == []
    pathsend = [
        recv(REQUEST),
        send(sized(99)),
        send({"type": "http.response.pathsend", "path": "/etc/hostname"}),
    ]
    assert run("http", pathsend) == []
    late = [*pathsend, send(body(b"x"))]
    assert found(run("http", late)) == [("http.after-final", 3)]
    early = [recv(REQUEST), send({"type": "http.response.pathsend", "path": "/x"})]
    assert found(run("http", early)) == [("http.body-before-start", 1), ("http.unfinished", None)]


def test_a_correct_websocket_chat() -> None:
    events = [
        recv(CONNECT),
        send({"type": "websocket.accept", "subprotocol": "chat", "headers": [(b"x-ws", b"yes")]}),
        recv({"type": "websocket.receive", "text": "hi", "bytes": None}),
        send(ws_text("HI")),
        recv({"type": "websocket.receive", "bytes": b"\x00"}),
        send({"type": "websocket.send", "bytes": b"\x00", "text": None}),
        send(ws_close(4001, "done here")),
    ]
    assert run("websocket", events) == []
    gone = [recv(CONNECT), send(ACCEPT), recv(WS_GONE)]
    assert run("websocket", gone) == []


@pytest.mark.parametrize("code", [1000, 1001, 1003, 1007, 1011, 1014, 3000, 4000, 4999])
def test_valid_close_codes(code: int) -> None:
    assert run("websocket", [recv(CONNECT), send(ACCEPT), send(ws_close(code))]) == []


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, None, 1000.0])
def test_invalid_close_codes(code: object) -> None:
    violations = run("websocket", [recv(CONNECT), send(ACCEPT), send(ws_close(code))])
    assert found(violations) == [("websocket.close-code", 2)]


def test_close_defaults_and_reasons() -> None:
    events = [recv(CONNECT), send(ACCEPT), send({"type": "websocket.close"})]
    assert run("websocket", events) == []
    for reason in ("x" * 123, "é" * 61, None, "€" * 41):
        assert run("websocket", [recv(CONNECT), send(ACCEPT), send(ws_close(1000, reason))]) == [], reason
    long = run("websocket", [recv(CONNECT), send(ACCEPT), send(ws_close(1000, "x" * 124))])
    assert [(v.rule, v.severity) for v in long] == [("websocket.close-reason-length", "warning")]


def test_websocket_rejected_by_close_before_accept() -> None:
    # The spec's way to refuse the handshake: the server answers 403. Not a violation.
    assert run("websocket", [recv(CONNECT), send(ws_close(1008, "go away"))]) == []
    assert run("websocket", [recv(CONNECT), send({"type": "websocket.close"}), recv(WS_GONE)]) == []


def test_websocket_denial_response() -> None:
    events = [recv(CONNECT), send(deny(401)), send(deny_body(b"no ", more=True)), send(deny_body(b"entry"))]
    assert run("websocket", events) == []
    assert run("websocket", [recv(CONNECT), send(deny(403)), send(deny_body())]) == []


def test_denial_response_fields() -> None:
    events = [
        recv(CONNECT),
        send({"type": "websocket.http.response.start", "status": "401", "headers": [(b"X", b"1")]}),
        send({"type": "websocket.http.response.body", "body": "no", "more_body": 0}),
    ]
    assert found(run("websocket", events)) == [
        ("http.status-type", 1),
        ("http.header-case", 1),
        ("http.body-type", 2),
        ("http.more-body-type", 2),
    ]


def test_a_correct_lifespan() -> None:
    events = [recv(STARTUP), send(STARTED), recv(SHUTDOWN), send(STOPPED)]
    assert run("lifespan", events, method=None) == []
    assert run("lifespan", [recv(STARTUP), send(START_FAILED)], "completed", None) == []
    assert run("lifespan", [recv(STARTUP), send(STARTED), recv(SHUTDOWN), send(STOP_FAILED)]) == []
    assert run("lifespan", [], "exception", None) == []  # an app without lifespan support


def test_other_scope_types_get_only_the_shape_check() -> None:
    assert run("sse", [recv({"type": "sse.open"}), send({"type": "anything"})]) == []
    assert found(run("sse", [send(b"raw")])) == [("message.malformed", 0)]


# The API ----------------------------------------------------------------------------------------


def test_feed_returns_what_this_message_broke() -> None:
    checker = Checker("http", "GET")
    clean = checker.feed(0, "receive", REQUEST)
    assert clean == []
    with pytest.raises(TypeError):
        clean.append(Violation("http.start-twice", "error", "x", 0))
    assert checker.feed(0, "receive", REQUEST) == []  # the shared empty result is still empty
    assert checker.feed(1, "send", start()) == []
    (bad,) = checker.feed(2, "send", body("text", more=True))
    assert bad == Violation("http.body-type", "error", "'body' is 'text', not bytes", 2)
    assert checker.feed(3, "send", body()) == []
    assert checker.finish("completed") == []
    assert checker.violations == [bad]


def test_finish_reports_once() -> None:
    checker = Checker("http")
    checker.feed(0, "receive", REQUEST)
    assert checker.finish("open") == []
    (unfinished,) = checker.finish("completed")
    assert unfinished.event is None and unfinished.rule == "http.unfinished"
    assert checker.finish("completed") == []
    assert checker.violations == [unfinished]


def test_messages_are_described_without_their_bulk() -> None:
    huge = "x" * 1_000_000
    (violation,) = run("http", [recv(REQUEST), send(start()), send(body(huge))])
    assert len(violation.message) < 120 and "…" in violation.message


# Junk never raises -----------------------------------------------------------------------------

KNOWN_TYPES = [
    "http.request",
    "http.disconnect",
    "http.response.start",
    "http.response.body",
    "http.response.trailers",
    "http.response.pathsend",
    "http.response.zerocopysend",
    "http.response.push",
    "websocket.connect",
    "websocket.accept",
    "websocket.send",
    "websocket.receive",
    "websocket.close",
    "websocket.disconnect",
    "websocket.http.response.start",
    "websocket.http.response.body",
    "lifespan.startup",
    "lifespan.startup.complete",
    "lifespan.startup.failed",
    "lifespan.shutdown",
    "lifespan.shutdown.complete",
]
FIELDS = [
    "status",
    "headers",
    "body",
    "more_body",
    "trailers",
    "more_trailers",
    "text",
    "bytes",
    "code",
    "reason",
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20)
    | st.sampled_from([b"content-length", b"Content-Length", b"12", b"\r\n", 1005, 204, "HEAD"])
)
junk = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
messages = st.one_of(
    junk,
    st.fixed_dictionaries(
        {"type": st.sampled_from(KNOWN_TYPES) | junk},
        optional={name: junk for name in FIELDS},
    ),
)
events = st.lists(st.tuples(st.sampled_from(["send", "receive", "sideways"]), messages), max_size=12)


@settings(max_examples=100, deadline=None)
@given(
    scope=st.sampled_from(["http", "websocket", "lifespan", "other"]),
    method=st.sampled_from([None, "GET", "HEAD"]),
    stream=events,
    outcome=st.sampled_from(["completed", "exception", "cancelled", "cut off", "open"]),
)
def test_junk_never_raises(
    scope: str, method: str | None, stream: list[tuple[str, object]], outcome: str
) -> None:
    # The checks themselves, not only the safety net in feed(): _feed must not raise either.
    checker = Checker(scope, method)
    for index, (direction, message) in enumerate(stream):
        checker._feed(index, direction, message, None)
    checker._finish(outcome)
    for violation in checker.violations:
        assert violation.rule in RULES and isinstance(violation.message, str)
    assert check_events(scope, method, stream, outcome) == checker.violations


class Hostile:
    """Refuses everything: comparison, hashing, length, repr, iteration."""

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no")

    def __hash__(self) -> int:
        raise RuntimeError("no")

    def __len__(self) -> int:
        raise RuntimeError("no")

    def __repr__(self) -> str:
        raise RuntimeError("no")

    def __iter__(self) -> Iterator[object]:
        raise RuntimeError("no")

    def __bool__(self) -> bool:
        raise RuntimeError("no")


class HostileDict(dict[str, Any]):
    def get(self, *args: object) -> Any:
        raise RuntimeError("no")


class HostileStr(str):
    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no")

    def __hash__(self) -> int:
        raise RuntimeError("no")


@pytest.mark.parametrize("scope", ["http", "websocket", "lifespan"])
def test_hostile_objects_never_raise(scope: str) -> None:
    hostile = Hostile()
    checker = Checker(scope, "GET")
    stream: list[object] = [
        hostile,
        HostileDict(type="http.response.start"),
        {"type": HostileStr("http.response.start"), "status": 200},
        {"type": "http.response.start", "status": hostile, "headers": hostile},
        {"type": "http.response.start", "status": 200, "headers": [hostile, (hostile, hostile)]},
        {"type": "http.response.body", "body": hostile, "more_body": hostile},
        {"type": "websocket.accept", "subprotocol": hostile, "headers": [(b"a", hostile)]},
        {"type": "websocket.send", "text": hostile, "bytes": hostile},
        {"type": "websocket.close", "code": hostile, "reason": hostile},
        {"type": "lifespan.startup.complete", "message": hostile},
        {"type": "http.response.trailers", "headers": hostile, "more_trailers": hostile},
    ]
    for index, message in enumerate(stream):
        for direction in ("send", "receive"):
            result = checker.feed(index, direction, message)
            assert isinstance(result, list)
    assert isinstance(checker.finish("completed"), list)
    assert all(v.rule in RULES for v in checker.violations)
