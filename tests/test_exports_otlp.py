"""OpenTelemetry export, checked where it lands: a real OTLP/HTTP endpoint on loopback
(tests/otlp_endpoint.py) decodes what asgispy sends with the OpenTelemetry proto package, and
every span, attribute, time and event is compared with the session it came from. Sessions are
recorded from real apps under a real uvicorn; ``asgispy export --otlp`` runs as a subprocess;
the live forwarder is fed by a real collector."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets.sync.client

import asgispy
from asgispy import Spy
from asgispy.codec.sessionfile import write_session
from asgispy.demo.app import CHAT_CLOSE_CODE, DEMO_TOKEN
from asgispy.demo.app import app as demo_app
from asgispy.exports.otlp import OtlpForwarder, send_session
from asgispy.exports.otlp_endpoint import OtlpError, traces_url
from asgispy.model.connection import Connection
from asgispy.model.session import Session
from tests.otlp_endpoint import OtlpEndpoint, SpanRecord, refused_port, wait_until
from tests.servers import CLEAN_LIFESPAN, ServerError, serve
from tests.test_wire_collector import CollectorThread

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 10
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
UNSAMPLED_PARENT = "b9c7c989f97918e1"
COOKIE = "visits=41; session=cookie-secret-value"
WELCOME = "héllo wörld ✓"
ONE_US = 1000  # ns: the recorded times are floats of seconds


# Sessions recorded at the real boundary ---------------------------------------------------------


def _all_ended(spy: Spy) -> None:
    wait_until(lambda: all(r.outcome != "open" for r in spy.records if r.type != "lifespan"), TIMEOUT)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Session:
    """The demo app's traffic, recorded with redact=[] (so the file holds the secrets: the export
    must mask them itself) and max_body=2048 (so a big form is cut when recorded)."""
    spy = Spy(demo_app, address=False, name="demo-shop", redact=[], max_body=2048)
    with serve(spy) as server, httpx.Client(timeout=TIMEOUT) as client:
        linked = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01", "tracestate": "shop=1,other=2"}
        client.get(server.url("/api/items/1"), headers=linked)
        client.get(
            server.url("/api/items/2"), headers={"traceparent": f"00-{TRACE_ID}-{UNSAMPLED_PARENT}-00"}
        )
        client.get(server.url("/api/items?q=tea&access_token=query-secret&Signature=sig-secret"))
        client.get(server.url("/api/me"), headers={"authorization": f"Bearer {DEMO_TOKEN}", "cookie": COOKIE})
        client.post(server.url("/feedback"), data={"name": "ada", "message": "é" * 1500})
        client.get(server.url("/logo.png"))
        assert client.get(server.url("/boom")).status_code == 500
        client.get(server.url("/stream?chunks=6"))
        with websockets.sync.client.connect(server.ws_url("/ws/chat?name=ada"), open_timeout=TIMEOUT) as ws:
            ws.recv(timeout=TIMEOUT)
            ws.send(WELCOME)
            ws.recv(timeout=TIMEOUT)
            ws.send(b"\x00\xff binary")
            ws.recv(timeout=TIMEOUT)
            ws.send("bye")
            ws.recv(timeout=TIMEOUT)
            with pytest.raises(websockets.ConnectionClosed):
                ws.recv(timeout=TIMEOUT)
        _all_ended(spy)
    path = spy.export(tmp_path_factory.mktemp("otlp") / "demo.json")
    return asgispy.load(path)


async def raw_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A raw ASGI app that breaks protocol rules (an upper-case header name; at /unfinished, a
    response never finished) and whose lifespan startup fails when its scope's state says so."""
    if scope["type"] == "lifespan":
        message = await receive()
        if message["type"] == "lifespan.startup" and scope.get("state", {}).get("fail") is not None:
            await send({"type": "lifespan.startup.failed", "message": "no database"})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"X-Shout", b"yes")]})
    if scope["path"] != "/unfinished":
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Session:
    """A protocol violation, and a lifespan whose startup failed (the server refused to start)."""
    spy = Spy(raw_app, address=False, name="raw")
    with serve(spy) as server, httpx.Client(timeout=TIMEOUT) as client:
        client.get(server.url("/shout"))
        with contextlib.suppress(httpx.HTTPError):
            client.get(server.url("/unfinished"))
        _all_ended(spy)

    async def failing(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            scope.setdefault("state", {})["fail"] = True
        await spy(scope, receive, send)

    with contextlib.suppress(ServerError), serve(failing, lifespan="on"):
        pass  # uvicorn gives up at the failed startup
    return asgispy.load(spy.export(tmp_path_factory.mktemp("otlp") / "raw.json"))


def received(session: Session, **options: Any) -> tuple[int, list[SpanRecord], OtlpEndpoint]:
    """Send ``session`` to a fresh endpoint: (what send_session returned, the spans, the endpoint)."""
    with OtlpEndpoint() as endpoint:
        count = send_session(session.connections, endpoint.base_url, producers=session.producers, **options)
        return count, endpoint.spans, endpoint


def by_id(spans: list[SpanRecord]) -> dict[str, SpanRecord]:
    return {span.id: span for span in spans}


def only(session: Session, path: str) -> Connection:
    (conn,) = [c for c in session.connections if c.path == path]
    return conn


def ns(seconds: float) -> int:
    return round(seconds * 1e9)


# The mapping ------------------------------------------------------------------------------------


def test_each_connection_is_one_span_at_its_recorded_times(demo: Session) -> None:
    count, spans, _ = received(demo)
    assert count == len(spans) == len(demo.connections)
    spans_by_id = by_id(spans)
    assert set(spans_by_id) == {c.id for c in demo.connections}
    for conn in demo.connections:
        span = spans_by_id[conn.id]
        assert abs(span.start - ns(conn.started)) <= ONE_US
        assert conn.duration is not None
        assert abs(span.end - (span.start + ns(conn.duration))) <= ONE_US
        assert span.scope == "asgispy"
        assert span.resource["service.name"] == "demo-shop"
        assert span.resource["service.instance.id"] == conn.producer
        assert span.resource["process.pid"] == os.getpid()
        assert span.attributes["asgispy.outcome"] == conn.outcome
        assert span.dropped_events == 0 and span.dropped_attributes == 0


def test_http_spans_follow_the_semantic_conventions(demo: Session) -> None:
    spans = by_id(received(demo)[1])
    item = only(demo, "/api/items/1")
    span = spans[item.id]
    scope = item.scope
    assert span.name == "GET /api/items/{item_id:int}"
    assert span.kind == "server" and span.status == "unset"
    host, port = scope["server"]
    assert {
        k: span.attributes[k]
        for k in (
            "http.request.method",
            "url.scheme",
            "url.path",
            "http.route",
            "http.response.status_code",
            "server.address",
            "server.port",
            "client.address",
            "client.port",
            "network.protocol.name",
            "network.protocol.version",
            "http.request.body.size",
            "http.response.body.size",
            "code.function.name",
        )
    } == {
        "http.request.method": "GET",
        "url.scheme": "http",
        "url.path": "/api/items/1",
        "http.route": "/api/items/{item_id:int}",
        "http.response.status_code": 200,
        "server.address": host,
        "server.port": port,
        "client.address": scope["client"][0],
        "client.port": scope["client"][1],
        "network.protocol.name": "http",
        "network.protocol.version": "1.1",
        "http.request.body.size": 0,
        "http.response.body.size": item.response_bytes,
        "code.function.name": "asgispy.demo.app.get_item",
    }
    assert span.attributes["user_agent.original"].startswith("python-httpx/")
    assert span.attributes["http.response.header.content-type"] == ["application/json"]
    assert "url.query" not in span.attributes
    assert spans[only(demo, "/api/items").id].attributes["url.query"].startswith("q=tea&")
    posted = spans[only(demo, "/feedback").id]
    assert posted.name == "POST /feedback"
    assert posted.attributes["http.request.body.size"] == only(demo, "/feedback").request_bytes > 2048


def test_every_message_is_an_event_at_its_time_with_its_summary(demo: Session) -> None:
    spans = by_id(received(demo)[1])
    for conn in demo.connections:
        events = [e for e in spans[conn.id].events if e.name != "exception"]
        assert [e.name for e in events] == [e.type for e in conn.events]
        start = spans[conn.id].start
        for event, sent in zip(conn.events, events, strict=True):
            assert abs(sent.time - (start + ns(event.t))) <= ONE_US
            assert sent.attributes["asgispy.direction"] == event.direction
            assert sent.attributes.get("asgispy.wait") == pytest.approx(event.wait)
            assert "asgispy.payload" not in sent.attributes  # bodies only when asked
    stream = only(demo, "/stream")
    stream_events = spans[stream.id].events
    bodies = [e for e in stream_events if e.name == "http.response.body"]
    assert [e.attributes["asgispy.more_body"] for e in bodies] == [True] * 6 + [False]
    assert bodies[0].attributes["asgispy.payload.size"] == len(b"chunk 1 of 6\n")
    assert bodies[0].attributes["asgispy.summary"] == "body 13 B more_body"
    start = next(e for e in stream_events if e.name == "http.response.start")
    assert (
        start.attributes["http.response.status_code"] == 200 and start.attributes["asgispy.summary"] == "200"
    )
    form = next(e for e in spans[only(demo, "/feedback").id].events if e.name == "http.request")
    assert form.attributes["asgispy.payload.cut"] is True
    assert form.attributes["asgispy.payload.size"] == only(demo, "/feedback").request_bytes


def test_bodies_go_only_when_asked_cut_to_the_bound(demo: Session) -> None:
    limit = 40
    spans = by_id(received(demo, bodies=True, body_limit=limit)[1])
    checked = kinds = 0
    for conn in demo.connections:
        for event, sent in zip(conn.events, spans[conn.id].events, strict=False):
            message = event.message
            field = next((f for f in ("body", "bytes", "text") if message.get(f) is not None), None)
            if field is None:
                assert "asgispy.payload" not in sent.attributes
                continue
            value = message[field]
            data = value.encode() if isinstance(value, str) else value
            shown = sent.attributes["asgispy.payload"]
            if sent.attributes.get("asgispy.payload.encoding") == "base64":
                kept = base64.b64decode(shown)
                kinds |= 1
            else:
                kept = shown.encode()
                kinds |= 2
            assert len(kept) <= limit and data.startswith(kept)
            truncated = len(kept) < len(data) or bool(event.cut and field in event.cut)
            assert sent.attributes.get("asgispy.payload.truncated", False) is truncated
            checked += 1
    assert checked > 10 and kinds == 3  # text and base64 (the PNG) both seen
    chat = spans[only(demo, "/ws/chat").id]
    sent_text = next(e for e in chat.events if e.name == "websocket.receive")
    assert (
        sent_text.attributes["asgispy.payload"] == WELCOME
        and sent_text.attributes["asgispy.payload.kind"] == "text"
    )
    # A cut never splits a UTF-8 character: 9 bytes end inside the "ö" of "héllo wörld".
    odd = by_id(received(demo, bodies=True, body_limit=9)[1])[chat.id]
    assert (
        next(e for e in odd.events if e.name == "websocket.receive").attributes["asgispy.payload"]
        == "héllo w"
    )


def test_many_messages_keep_the_first_and_the_last(demo: Session) -> None:
    stream = only(demo, "/stream")
    span = by_id(received(demo, max_events=4)[1])[stream.id]
    assert [e.name for e in span.events] == [e.type for e in stream.events[:3]] + [stream.events[-1].type]
    assert span.attributes["asgispy.events.omitted"] == len(stream.events) - 4


def test_an_app_that_raises_is_an_error_with_its_exception(demo: Session) -> None:
    boom = only(demo, "/boom")
    assert boom.outcome == "exception" and boom.error is not None
    span = by_id(received(demo)[1])[boom.id]
    assert span.status == "error"
    assert span.status_message == "RuntimeError: payment service unreachable for order 42"
    assert span.attributes["error.type"] == "RuntimeError"
    assert span.attributes["http.response.status_code"] == 500
    exception = span.events[-1]
    assert exception.name == "exception" and exception.time == span.end
    assert exception.attributes["exception.type"] == "RuntimeError"
    assert exception.attributes["exception.message"] == boom.error.message
    assert exception.attributes["exception.stacktrace"] == boom.error.traceback
    assert "in boom" in boom.error.traceback


def test_websocket_and_lifespan_spans_of_their_own_kind(demo: Session) -> None:
    spans = by_id(received(demo)[1])
    chat = only(demo, "/ws/chat")
    span = spans[chat.id]
    assert span.name == "WEBSOCKET /ws/chat" and span.kind == "server"
    assert span.attributes["url.scheme"] == "ws" and span.attributes["http.response.status_code"] == 101
    assert span.attributes["url.query"] == "name=ada"
    assert span.attributes["asgispy.websocket.close_code"] == CHAT_CLOSE_CODE
    close = next(e for e in span.events if e.name == "websocket.close")
    assert close.attributes["asgispy.websocket.close_code"] == CHAT_CLOSE_CODE
    assert close.attributes["asgispy.summary"] == f"code {CHAT_CLOSE_CODE} 'bye'"
    binary = [e for e in span.events if e.name == "websocket.receive"][1]
    assert (
        binary.attributes["asgispy.payload.kind"] == "bytes"
        and binary.attributes["asgispy.payload.size"] == 9
    )
    (lifespan,) = [c for c in demo.connections if c.type == "lifespan"]
    span = spans[lifespan.id]
    assert span.name == "lifespan" and span.kind == "internal" and span.status == "unset"
    assert [e.name for e in span.events] == CLEAN_LIFESPAN
    assert not any(k.startswith(("http.", "url.")) for k in span.attributes)


def test_violations_and_a_failed_lifespan(raw: Session) -> None:
    spans = by_id(received(raw)[1])
    shout = only(raw, "/shout")
    assert [v.rule for v in shout.violations] == ["http.header-case"]
    span = spans[shout.id]
    assert span.name == "GET" and "http.route" not in span.attributes  # no route known: the method alone
    assert span.attributes["asgispy.violations"] == ["http.header-case"]
    (start,) = [e for e in span.events if "asgispy.violations" in e.attributes]
    assert start.name == "http.response.start"
    assert start.attributes["asgispy.violations"][0].startswith("http.header-case (warning): ")
    unfinished = spans[only(raw, "/unfinished").id]
    (last,) = [e for e in unfinished.events if e.name == "asgispy.violation"]
    assert last.time == unfinished.end and unfinished.events[-1] is last
    assert [v.split(" ", 1)[0] for v in last.attributes["asgispy.violations"]] == ["http.unfinished"]
    (failed,) = [c for c in raw.connections if any(e.type == "lifespan.startup.failed" for e in c.events)]
    span = spans[failed.id]
    assert span.status == "error" and span.status_message == "no database"
    assert span.events[-1].attributes["asgispy.failure.message"] == "no database"
    assert {s.resource["service.name"] for s in spans.values()} == {"raw"}


def test_an_incoming_traceparent_links_the_span_into_the_callers_trace(demo: Session) -> None:
    spans = by_id(received(demo)[1])
    linked = spans[only(demo, "/api/items/1").id]
    assert (linked.trace_id, linked.parent_span_id) == (TRACE_ID, PARENT_ID)
    assert linked.trace_state == "shop=1,other=2"
    # The caller did not sample its trace; what was recorded is sent all the same, still linked.
    unsampled = spans[only(demo, "/api/items/2").id]
    assert (unsampled.trace_id, unsampled.parent_span_id) == (TRACE_ID, UNSAMPLED_PARENT)
    roots = [s for s in spans.values() if s not in (linked, unsampled)]
    assert all(s.parent_span_id == "" and s.trace_id != TRACE_ID for s in roots)
    assert len({s.trace_id for s in roots}) == len(roots)


def test_secrets_never_leave_even_from_a_session_that_kept_them(demo: Session) -> None:
    me = only(demo, "/api/me")
    assert (b"authorization", f"Bearer {DEMO_TOKEN}".encode()) in me.request_headers  # the file has it
    _, spans, endpoint = received(demo, bodies=True, body_limit=4096)
    wire = b"".join(r.body for r in endpoint.requests)
    for secret in (DEMO_TOKEN, "cookie-secret-value", "query-secret", "sig-secret", "visits=42"):
        assert secret.encode() not in wire, secret
    span = by_id(spans)[me.id]
    assert span.attributes["http.request.header.authorization"] == ["[redacted]"]
    assert span.attributes["http.request.header.cookie"] == ["[redacted]"]
    assert span.attributes["http.response.header.set-cookie"] == ["[redacted]"]
    query = by_id(spans)[only(demo, "/api/items").id].attributes["url.query"]
    assert query == "q=tea&access_token=REDACTED&Signature=REDACTED"


def test_urls_given_as_a_base_or_in_full() -> None:
    assert traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert traces_url("https://tempo.example/otlp/") == "https://tempo.example/otlp/v1/traces"
    assert traces_url("http://collector:4318/v1/traces") == "http://collector:4318/v1/traces"
    assert traces_url("http://gateway/custom/path") == "http://gateway/custom/path"
    for bad in ("localhost:4318", "grpc://collector:4317", "http://", "http://host:port"):
        with pytest.raises(ValueError):
            traces_url(bad)


def test_an_endpoint_that_refuses_stops_the_export_with_its_answer(demo: Session) -> None:
    with OtlpEndpoint(status=401) as endpoint, pytest.raises(OtlpError) as caught:
        send_session(demo.connections, endpoint.base_url, batch_size=2)
    assert (
        str(caught.value)
        == f"cannot send spans to {endpoint.base_url}/v1/traces: it answered 401 Unauthorized"
    )
    assert caught.value.sent == 0 and len(endpoint.requests) == 0


# The command line -------------------------------------------------------------------------------


def cli(*args: str, code: str | None = None) -> subprocess.CompletedProcess[str]:
    command = ["-c", code, *args] if code else ["-m", "asgispy", *args]
    return subprocess.run(
        [sys.executable, *command],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def demo_file(demo: Session, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("otlp-cli") / "demo.json"
    write_session(path, demo.document())
    return path


def test_export_sends_the_filtered_session_and_prints_nothing(demo_file: Path, demo: Session) -> None:
    with OtlpEndpoint() as endpoint:
        result = cli(
            "export", str(demo_file), "--otlp", endpoint.base_url, "--filter=-type:lifespan",
            "--otlp-header", "Authorization=Bearer otlp-key", "--otlp-service", "shop",
        )  # fmt: skip
        spans = endpoint.spans
        requests = endpoint.requests
    wanted = [c for c in demo.connections if c.type != "lifespan"]
    assert result.returncode == 0, result.stderr
    (request,) = requests
    assert result.stdout == ""
    assert (
        result.stderr.strip() == f"asgispy export: sent {len(wanted)} spans to {endpoint.base_url}/v1/traces"
    )
    assert sorted(s.id for s in spans) == sorted(c.id for c in wanted)
    assert {s.resource["service.name"] for s in spans} == {"shop"}
    assert request.headers["authorization"] == "Bearer otlp-key"
    assert request.headers["content-encoding"] == "gzip"


def test_export_with_o_writes_the_file_too_and_bodies_on_request(demo_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.har"
    with OtlpEndpoint() as endpoint:
        result = cli(
            "export", str(demo_file), "--otlp", endpoint.base_url + "/", "--filter", "path:/logo.png",
            "--otlp-bodies", "--otlp-body-limit", "8", "-o", str(out),
        )  # fmt: skip
        (span,) = endpoint.spans
    assert result.returncode == 0, result.stderr
    assert "as har" in result.stderr and "sent 1 span to" in result.stderr
    assert json.loads(out.read_text())["log"]["entries"][0]["request"]["url"].endswith("/logo.png")
    body = next(e for e in span.events if e.name == "http.response.body")
    assert base64.b64decode(body.attributes["asgispy.payload"]) == b"\x89PNG\r\n\x1a\n"


def test_export_says_clearly_when_the_endpoint_is_down_or_refuses(demo_file: Path) -> None:
    sock, port = refused_port()
    with sock:
        down = cli("export", str(demo_file), "--otlp", f"http://127.0.0.1:{port}", "--otlp-timeout", "1")
    assert down.returncode == 1 and down.stdout == ""
    total = len(asgispy.load(demo_file).connections)
    assert down.stderr.strip() == (
        f"asgispy export: cannot send spans to http://127.0.0.1:{port}/v1/traces: connection refused "
        f"(sent 0 of {total} spans)"
    )
    with OtlpEndpoint(status=401) as endpoint:
        refused = cli("export", str(demo_file), "--otlp", endpoint.base_url)
    assert refused.returncode == 1 and "it answered 401 Unauthorized" in refused.stderr


def test_export_mistakes_and_a_missing_extra(demo_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from asgispy.cli.main import main

    assert main(["export", str(demo_file), "--otlp", "localhost:4318"]) == 2
    assert "is not an OTLP/HTTP URL" in capsys.readouterr().err
    assert main(["export", str(demo_file), "--otlp", "http://127.0.0.1:9", "--otlp-header", "novalue"]) == 2
    assert "'novalue' is not NAME=VALUE" in capsys.readouterr().err
    assert main(["export", str(demo_file), "--otlp-bodies"]) == 2
    assert "need --otlp URL" in capsys.readouterr().err
    # Without the extra (its packages cannot be imported), the command says how to get it.
    code = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "from asgispy.cli.main import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    missing = cli("export", str(demo_file), "--otlp", "http://127.0.0.1:4318", code=code)
    assert missing.returncode == 2 and "pip install 'asgispy[otlp]'" in missing.stderr


def test_import_asgispy_loads_no_opentelemetry() -> None:
    code = (
        "import sys, asgispy, asgispy.exports.otlp, asgispy.cli.export\n"
        "print([m for m in sys.modules if m.startswith(('opentelemetry', 'google.protobuf', 'requests'))])\n"
    )
    result = cli(code=code)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr


# Forwarding live --------------------------------------------------------------------------------


@pytest.fixture
def collector(sockdir: Path) -> Iterator[CollectorThread]:
    with CollectorThread([f"unix:{sockdir}/c.sock"]) as running:
        yield running


def traffic(server_url: Any, paths: list[str]) -> None:
    with httpx.Client(timeout=TIMEOUT) as client:
        for path in paths:
            client.get(server_url(path))


def settled(collector: CollectorThread, count: int) -> list[Connection]:
    """The store's connections once ``count`` have ended."""
    collector.wait_for(lambda s: sum(1 for c in s if c.outcome != "open") >= count)
    return list(collector.call(lambda: list(collector.store)))


def test_the_forwarder_sends_each_connection_as_it_ends(collector: CollectorThread) -> None:
    warnings: list[str] = []
    with OtlpEndpoint() as endpoint:
        forwarder = OtlpForwarder(collector.store, endpoint.base_url, delay=0.05, warn=warnings.append)
        with serve(Spy(demo_app, address=collector.address, name="live-shop")) as server:
            traffic(server.url, ["/api/items", "/api/items/1", "/health"])
            endpoint.wait_for_spans(3)  # sent live, while the server still runs
            with websockets.sync.client.connect(server.ws_url("/ws/chat"), open_timeout=TIMEOUT) as ws:
                ws.recv(timeout=TIMEOUT)
        stored = settled(collector, 5)  # and the lifespan, once the server stopped
        collector.stop()
        summary = forwarder.close()
        spans = by_id(endpoint.spans)
    assert summary == f"otlp: sent 5 spans to {endpoint.base_url}/v1/traces"
    assert warnings == [] and forwarder.sent == 5 and forwarder.dropped == 0
    assert set(spans) == {c.id for c in stored}
    for conn in stored:
        span = spans[conn.id]
        assert abs(span.start - ns(conn.started)) <= ONE_US
        assert [e.name for e in span.events] == [e.type for e in conn.events]
        assert span.resource["service.name"] == "live-shop"
    assert (
        spans[next(c.id for c in stored if c.path == "/api/items/1")].name == "GET /api/items/{item_id:int}"
    )


class Collected(logging.Handler):
    """What the "asgispy" logger says, whatever its propagation (``record`` turns it off)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def said() -> Iterator[list[str]]:
    log = logging.getLogger("asgispy")
    handler, level = Collected(), log.level
    log.addHandler(handler)
    log.setLevel(logging.WARNING)
    yield handler.messages
    log.removeHandler(handler)
    log.setLevel(level)


def test_an_endpoint_that_is_down_loses_nothing_from_the_session(
    collector: CollectorThread, tmp_path: Path, said: list[str]
) -> None:
    endpoint = OtlpEndpoint(listening=False)
    url = f"{endpoint.base_url}/v1/traces"
    forwarder = OtlpForwarder(collector.store, endpoint.base_url, timeout=0.5, delay=0.05, max_queue=8)
    try:
        with serve(Spy(demo_app, address=collector.address)) as server:
            traffic(server.url, [f"/api/items/{i}" for i in range(20)])
            wait_until(lambda: forwarder.last_error is not None, TIMEOUT, forwarder.summary)
            endpoint.listen()  # it comes back, on the same port
            traffic(server.url, ["/health", "/api/items"])
            wait_until(lambda: forwarder.sent >= 1, TIMEOUT, forwarder.summary)
        stored = settled(collector, 23)
        collector.stop()
        summary = forwarder.close()
        arrived = {s.id for s in endpoint.spans}
    finally:
        endpoint.close()
    assert said[0] == (
        f"otlp: cannot send spans to {url}: connection refused; "
        "dropping them until it answers (the session file keeps everything)"
    )
    assert said[1].startswith(f"otlp: spans reach {url} again (") and len(said) == 2, said
    assert forwarder.sent == len(arrived) >= 1 and forwarder.sent + forwarder.dropped == 23
    assert (
        summary
        == f"otlp: sent {forwarder.sent} spans to {url}, {forwarder.dropped} dropped (connection refused)"
    )
    # The session the recorder writes has every connection, whatever the endpoint took.
    path = write_session(tmp_path / "kept.json", collector.store.session().document())
    kept = asgispy.load(path).connections
    assert len(kept) == len(stored) == 23
    assert sorted(c.path for c in kept if c.type == "http") == sorted(
        [f"/api/items/{i}" for i in range(20)] + ["/health", "/api/items"]
    )
    assert all(c.outcome == "completed" and c.events for c in kept)


def test_closing_takes_bounded_time_when_the_endpoint_never_answers(collector: CollectorThread) -> None:
    """An endpoint that takes the connection and never answers, and an export timeout longer
    than this test may run: close() still returns, at its own deadline, and counts the loss."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        forwarder = OtlpForwarder(collector.store, url, timeout=600, delay=0.05)
        with serve(Spy(demo_app, address=collector.address)) as server:
            traffic(server.url, ["/health", "/api/items"])
        ended = settled(collector, 3)
        collector.stop()
        summary = forwarder.close(timeout=0.5)
        closed_with = (forwarder.sent, forwarder.dropped)
    # The SDK gives up on the batch still in flight as it shuts down, after close() counted it:
    # the counts stay what the summary said.
    time.sleep(0.5)
    seen = [(c.id, c.type, c.path, c.outcome) for c in ended]
    assert closed_with == (forwarder.sent, forwarder.dropped) == (0, 3), seen
    assert summary == f"otlp: sent 0 spans to {url}/v1/traces, 3 dropped (no answer within 0.5 s of closing)"
