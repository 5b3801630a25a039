"""What the app did inside a request, over OTLP, checked where it lands (a real OTLP/HTTP endpoint
on loopback, tests/otlp_endpoint.py): outgoing calls and SQL as CLIENT spans under the
connection's span, per the HTTP client and database conventions; logs as events on it."""

from __future__ import annotations

import pytest

from asgispy.exports.otlp import send_session
from asgispy.model.session import Session
from tests.inside_session import TRACEBACK, recorded_session
from tests.otlp_endpoint import OtlpEndpoint, SpanRecord

pytestmark = pytest.mark.timeout(60)


def ns(seconds: float) -> int:
    return round(seconds * 1e9)


@pytest.fixture(scope="module")
def session() -> Session:
    return recorded_session()


@pytest.fixture(scope="module")
def sent(session: Session) -> tuple[int, list[SpanRecord]]:
    with OtlpEndpoint() as endpoint:
        count = send_session(session.connections, endpoint.base_url, producers=session.producers)
        return count, endpoint.spans


def children(spans: list[SpanRecord], session: Session) -> tuple[SpanRecord, list[SpanRecord]]:
    conn = next(c for c in session.connections if c.path == "/checkout")
    (parent,) = [s for s in spans if s.id == conn.id]
    return parent, sorted((s for s in spans if s.parent_span_id == parent.span_id), key=lambda s: s.start)


def test_calls_and_sql_are_client_spans_under_the_connection(
    sent: tuple[int, list[SpanRecord]], session: Session
) -> None:
    count, spans = sent
    assert count == len(session.connections)  # connections, the client spans counted with theirs
    assert len(spans) == len(session.connections) + 5
    parent, kids = children(spans, session)
    conn = next(c for c in session.connections if c.path == "/checkout")
    assert [k.kind for k in kids] == ["client"] * 5
    assert all(k.trace_id == parent.trace_id and k.resource == parent.resource for k in kids)
    assert [k.name for k in kids] == ["GET", "SELECT orders", "POST", "POST", "INSERT audit"]
    assert [k.start - parent.start for k in kids] == pytest.approx(
        [ns(t) for t in (0.001, 0.006, 0.007, 0.009, 0.02)], abs=1000
    )
    cards, select, upload, pay, audit = kids
    assert cards.end - cards.start == pytest.approx(ns(0.004), abs=1000)
    assert ns(conn.started) <= parent.start
    assert {k: cards.attributes[k] for k in cards.attributes if not k.startswith("http.re")} == {
        "url.full": "https://api.example.com:8443/v1/cards?id=7",
        "url.scheme": "https",
        "server.address": "api.example.com",
        "server.port": 8443,
        "asgispy.library": "httpx",
    }
    assert cards.attributes["http.request.method"] == "GET"
    assert cards.attributes["http.response.status_code"] == 200
    assert cards.attributes["http.request.header.authorization"] == ["[redacted]"]
    assert cards.attributes["http.response.header.content-type"] == ["application/json"]
    assert cards.status == "unset"
    assert upload.attributes["server.port"] == 80 and upload.attributes["http.response.status_code"] == 201
    assert (
        upload.attributes["http.request.body.size"] == 11
        and upload.attributes["http.response.body.size"] == 100
    )
    assert pay.status == "error" and pay.attributes["error.type"] == "ConnectError"
    assert "http.response.status_code" not in pay.attributes and "Connection refused" in pay.status_message
    assert select.attributes == {
        "db.system.name": "sqlite",
        "db.query.text": "SELECT id, total FROM orders WHERE id = ?",
        "db.operation.name": "SELECT",
        "db.collection.name": "orders",
        "db.response.returned_rows": 1,
    }
    assert audit.attributes["asgispy.after_response"] is True


def test_logs_are_events_on_the_connections_span(
    sent: tuple[int, list[SpanRecord]], session: Session
) -> None:
    parent, _ = children(sent[1], session)
    logs = [e for e in parent.events if e.name == "log"]
    assert [(e.time - parent.start, e.attributes["log.message"]) for e in logs] == [
        (pytest.approx(ns(0.008), abs=1000), "slow card service"),
        (pytest.approx(ns(0.0125), abs=1000), "payment failed"),
    ]
    assert logs[0].attributes == {
        "log.severity": "WARNING",
        "log.severity_number": 13,
        "log.message": "slow card service",
        "log.logger": "shop",
        "code.file.path": "/srv/app.py",
        "code.line.number": 40,
    }
    (exception,) = [e for e in parent.events if e.name == "exception"]
    assert exception.time == logs[1].time
    assert exception.attributes == {
        "exception.type": "ValueError",
        "exception.message": "card declined",
        "exception.stacktrace": TRACEBACK,
    }
    times = [e.time for e in parent.events]
    assert times == sorted(times)  # among the ASGI messages, in time order
    assert parent.status == "unset"  # a logged error is not the request's failure
