"""Spy at the real boundary: real servers on 127.0.0.1, real clients, every message compared.

Each test serves ``Spy(Recorder(app))``, drives it with httpx or the websockets client,
stops the server (so lifespan shutdown is recorded too), then ``harness.check()`` exports
the session, validates it against the shipped JSON Schema, makes sure no secret reached
the file, loads it back and compares every connection, message by message, with what the
plain recording middleware inside Spy saw.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from asgispy.codec.redact import REDACTED
from asgispy.model.connection import Connection
from asgispy.model.session import Session
from tests.apps.django_app import app as django_app
from tests.apps.fastapi_app import app as fastapi_app
from tests.apps.raw import BINARY, LATIN1_VALUE, edge_app, seed_app
from tests.apps.recording import Harness
from tests.apps.starlette_app import app as starlette_app
from tests.servers import (
    CLEAN_LIFESPAN,
    HYPERCORN,
    UVICORN_H11,
    UVICORN_HTTPTOOLS,
    UVICORN_SANSIO,
    UVICORN_WSPROTO,
    ServerError,
    ServerSpec,
    serve,
)

# uvicorn warns that its legacy "websockets" implementation will be replaced; it is still one we test.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

MakeHarness = Callable[..., Harness]

#: 300 KB of every byte value, so the body is neither UTF-8 nor Latin-1 text.
UPLOAD = BINARY * 1200
QUERY = "/echo?q=%C3%A9t%C3%A9%20%E2%9C%93&tag=a%2Bb&empty="

EDGE_SERVERS = pytest.mark.parametrize("spec", [UVICORN_H11, UVICORN_HTTPTOOLS], ids=str)
WS_SERVERS = pytest.mark.parametrize(
    "spec", [UVICORN_H11, UVICORN_WSPROTO, UVICORN_SANSIO, HYPERCORN], ids=str
)


def pieces(data: bytes, size: int) -> Iterator[bytes]:
    """A request body sent in pieces (chunked), so the server hands it over in several messages."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def http_connections(session: Session, path: str | None = None) -> list[Connection]:
    return [c for c in session if c.type == "http" and (path is None or c.path == path)]


def only(session: Session, path: str) -> Connection:
    (conn,) = http_connections(session, path)
    return conn


# Every app on uvicorn with h11 ---------------------------------------------------------------


def test_seed_app(harness: MakeHarness, http: httpx.Client) -> None:
    h = harness(seed_app)
    with serve(h.spy, UVICORN_H11) as server:
        assert http.get(server.url("/?q=%E2%9C%93")).json() == {"message": "Hello, ASGI!"}
        assert http.post(server.url("/"), content=b"").status_code == 200
        assert http.post(server.url("/big"), content=UPLOAD).status_code == 200
    session = h.check()
    lifespan, get, empty, big = session.connections
    # The article's app returns at once for a lifespan scope: recorded, with no messages.
    assert lifespan.type == "lifespan" and lifespan.outcome == "completed" and lifespan.events == []
    assert get.scope["query_string"] == b"q=%E2%9C%93" and get.status == 200
    assert get.response_headers == [(b"content-type", b"application/json")]
    assert get.response_body() == b'{"message": "Hello, ASGI!"}'
    assert empty.request_body() == b"" and empty.events[0].type == "http.request"
    # The app asked for one message of the big body; Spy read no more than that.
    assert [e.type for e in big.events] == ["http.request", "http.response.start", "http.response.body"]
    assert big.request_bytes < len(UPLOAD)


FRAMEWORK_REQUESTS = [
    ("GET", "/items/42?q=caf%C3%A9", None, 200),
    ("POST", "/upload", UPLOAD, 200),
    ("POST", "/upload", b"", 200),
    ("GET", "/missing", None, 404),
    ("GET", "/raise", None, 500),
]


@pytest.mark.parametrize(
    ("name", "app", "route", "endpoint", "params"),
    [
        (
            "starlette",
            starlette_app,
            "/items/{item_id:int}",
            "tests.apps.starlette_app.item",
            {"item_id": 42},
        ),
        ("fastapi", fastapi_app, "/items/{item_id}", "tests.apps.fastapi_app.read_item", {"item_id": "42"}),
    ],
)
def test_framework_apps(
    harness: MakeHarness, http: httpx.Client, name: str, app: Any, route: str, endpoint: str, params: Any
) -> None:
    h = harness(app)
    with serve(h.spy, UVICORN_H11) as server:
        for method, path, body, status in FRAMEWORK_REQUESTS:
            assert http.request(method, server.url(path), content=body).status_code == status, path
        assert http.get(server.url("/nothing")).status_code == 204
        with connect(server.ws_url("/ws")) as ws:
            ws.send("hello")
            ws.recv()
            ws.send(b"\x00\x01")
            ws.recv()
            with pytest.raises(ConnectionClosed):
                ws.recv()
    session = h.check()

    lifespan = session.connections[0]
    assert lifespan.type == "lifespan" and lifespan.outcome == "completed"
    assert [e.type for e in lifespan.events] == CLEAN_LIFESPAN
    item = http_connections(session, "/items/42")[0]
    assert item.handler is not None
    assert item.route == route and item.handler["endpoint"] == endpoint
    assert item.handler["path_params"] == params
    assert item.scope["query_string"] == b"q=caf%C3%A9"
    # Only the scope as it arrived is kept; what the router added lives in the handler summary.
    assert "route" not in item.scope and "endpoint" not in item.scope

    uploads = http_connections(session, "/upload")
    assert b"".join(e.message["body"] for e in uploads[0].events if e.type == "http.request") == UPLOAD
    assert uploads[1].request_body() == b"" and uploads[1].status == 200
    assert only(session, "/missing").status == 404

    failed = only(session, "/raise")
    assert failed.status == 500 and failed.outcome == "exception"
    assert failed.error is not None and failed.error.type == "tests.apps.raw.AppError"
    assert f"{name} endpoint failed" in failed.error.traceback

    (ws_conn,) = [c for c in session if c.type == "websocket"]
    assert ws_conn.status == 101 and ws_conn.close_code in (4002, 4003)
    assert ws_conn.handler is not None and ws_conn.route == "/ws"
    if name == "starlette":
        # The lifespan's state holds an object JSON cannot; it is kept as an opaque stand-in.
        pool = item.scope["state"]["pool"]
        assert pool.type == "tests.apps.starlette_app.Pool" and pool.repr == "<Pool size=4>"


def test_django_app(harness: MakeHarness, http: httpx.Client) -> None:
    h = harness(django_app)
    with serve(h.spy, UVICORN_H11) as server:
        for method, path, body, status in FRAMEWORK_REQUESTS:
            assert http.request(method, server.url(path), content=body).status_code == status, path
    session = h.check()
    lifespan = session.connections[0]
    # Django refuses lifespan scopes by raising; uvicorn ("auto") carries on without it.
    assert lifespan.outcome == "exception" and lifespan.error is not None
    assert lifespan.error.type == "ValueError" and "lifespan" in lifespan.error.message
    # Django turns a failing view into a 500 itself: the connection completed.
    failed = only(session, "/raise")
    assert failed.status == 500 and failed.outcome == "completed" and failed.error is None
    upload = http_connections(session, "/upload")[0]
    assert (
        upload.request_body() == UPLOAD and upload.response_body() == b'{"length": 307200, "method": "POST"}'
    )
    assert upload.handler is None  # Django does not put its route into the scope


# Edge cases on uvicorn's two HTTP parsers ---------------------------------------------------


@EDGE_SERVERS
def test_query_upload_and_empty_post(harness: MakeHarness, http: httpx.Client, spec: ServerSpec) -> None:
    h = harness(edge_app)
    with serve(h.spy, spec) as server:
        answer = http.get(server.url(QUERY)).json()
        assert answer["query"] == {"q": ["été ✓"], "tag": ["a+b"]}
        answer = http.post(server.url("/echo"), content=pieces(UPLOAD, 16 * 1024)).json()
        assert answer["length"] == len(UPLOAD)
        answer = http.post(server.url("/echo"), content=b"").json()
        assert answer["length"] == 0
    session = h.check()
    query, upload, empty = http_connections(session)
    assert query.scope["query_string"] == QUERY.split("?", 1)[1].encode()
    assert query.target == QUERY and query.method == "GET"
    requests = [e for e in upload.events if e.type == "http.request"]
    assert len(requests) == answer_messages(upload) > 1
    assert upload.request_body() == UPLOAD and upload.request_bytes == len(UPLOAD)
    assert [e.message.get("more_body", False) for e in requests][-1] is False
    assert empty.request_body() == b"" and empty.events[0].message["body"] == b""


def answer_messages(conn: Connection) -> int:
    """How many ``http.request`` messages the app itself counted (it says so in its answer)."""
    import json

    return int(json.loads(conn.response_body())["messages"])


@EDGE_SERVERS
def test_responses_of_every_shape(harness: MakeHarness, http: httpx.Client, spec: ServerSpec) -> None:
    h = harness(edge_app)
    with serve(h.spy, spec) as server:
        streamed = http.get(server.url("/stream?n=120"))
        assert streamed.text.count("chunk") == 120
        assert http.get(server.url("/binary")).content == BINARY
        latin = http.get(server.url("/latin1"), headers=[(b"x-name", "José".encode("latin-1"))])
        assert (b"x-latin1", LATIN1_VALUE) in latin.headers.raw
        head = http.head(server.url("/echo"))
        assert head.status_code == 200 and head.content == b""
        assert http.get(server.url("/nothing")).status_code == 204
        missing = http.get(server.url("/no/such/%E2%9C%93"))
        assert missing.status_code == 404
    session = h.check()
    stream, binary, latin1, head_conn, nothing, missing_conn = http_connections(session)
    bodies = [e for e in stream.events if e.type == "http.response.body"]
    assert len(bodies) == 121 and stream.response_body().count(b"chunk") == 120
    assert binary.response_body() == BINARY and binary.status == 200
    assert (b"x-name", "José".encode("latin-1")) in latin1.request_headers
    assert (b"x-latin1", LATIN1_VALUE) in latin1.response_headers
    # HEAD: the app sent a body; the server dropped it on the wire. The record shows what the app did.
    assert head_conn.method == "HEAD" and len(head_conn.response_body()) > 0
    assert nothing.status == 204 and nothing.response_bytes == 0
    assert missing_conn.status == 404 and missing_conn.path == "/no/such/✓"
    assert missing_conn.scope["raw_path"] == b"/no/such/%E2%9C%93"


@EDGE_SERVERS
def test_endpoint_that_raises(harness: MakeHarness, http: httpx.Client, spec: ServerSpec) -> None:
    h = harness(edge_app)
    with serve(h.spy, spec) as server:
        assert http.get(server.url("/raise")).status_code == 500
        assert http.get(server.url("/echo")).status_code == 200  # the server and Spy carry on
    session = h.check()
    failed, after = http_connections(session)
    assert failed.outcome == "exception" and after.outcome == "completed"
    assert failed.error is not None and failed.error.type == "tests.apps.raw.AppError"
    assert failed.error.message == "the endpoint failed"
    assert "KeyError: 'missing'" in failed.error.traceback
    assert "direct cause of the following exception" in failed.error.traceback
    assert failed.duration is not None and failed.status is None  # it raised before any response


@EDGE_SERVERS
def test_client_disconnects_mid_stream(harness: MakeHarness, http: httpx.Client, spec: ServerSpec) -> None:
    h = harness(edge_app)
    with serve(h.spy, spec) as server:
        with httpx.Client(timeout=5) as client, client.stream("GET", server.url("/forever")) as response:
            received = b""
            for chunk in response.iter_raw():
                received += chunk
                if received.count(b"\n") >= 3:
                    break
        h.settle()
    session = h.check()
    conn = only(session, "/forever")
    assert conn.outcome == "completed"
    assert any(e.type == "http.disconnect" for e in conn.events)
    sent = [e for e in conn.events if e.type == "http.response.body"]
    assert len(sent) >= 3 and all(e.message["more_body"] for e in sent)


@EDGE_SERVERS
def test_secrets_never_reach_the_file(harness: MakeHarness, http: httpx.Client, spec: ServerSpec) -> None:
    secrets = (
        b"S3CR3T-BEARER",
        b"S3CR3T-COOKIE",
        b"S3CR3T-KEY",
        b"S3CR3T-PROXY",
        b"S3CR3T-SET-COOKIE",
        b"K3Y-OUT",
    )
    h = harness(edge_app)
    with serve(h.spy, spec) as server:
        headers = {
            "Authorization": "Bearer S3CR3T-BEARER",
            "Cookie": "sid=S3CR3T-COOKIE; theme=dark",
            "X-API-Key": "S3CR3T-KEY",
            "Proxy-Authorization": "Basic S3CR3T-PROXY",
            "X-Visible": "not a secret",
        }
        assert http.get(server.url("/secret"), headers=headers).status_code == 200
        with connect(
            server.ws_url("/ws"), additional_headers={"Authorization": "Bearer S3CR3T-BEARER"}
        ) as ws:
            ws.send("bye")
            with pytest.raises(ConnectionClosed):
                ws.recv()
    session = h.check(secrets=secrets)
    conn = only(session, "/secret")
    request = dict(conn.request_headers)
    for name in (b"authorization", b"cookie", b"x-api-key", b"proxy-authorization"):
        assert request[name] == REDACTED
    assert request[b"x-visible"] == b"not a secret"
    response = dict(conn.response_headers)
    assert response[b"Set-Cookie"] == REDACTED and response[b"x-api-key"] == REDACTED
    # Only the export is masked: the live record still holds what the app saw.
    live = next(r for r in h.spy.records if r.scope.get("path") == "/secret")
    assert (b"authorization", b"Bearer S3CR3T-BEARER") in live.scope["headers"]


@EDGE_SERVERS
def test_trailers_a_server_does_not_support(
    harness: MakeHarness, http: httpx.Client, spec: ServerSpec
) -> None:
    h = harness(edge_app)
    with serve(h.spy, spec) as server:
        response = http.get(server.url("/trailers"))
        assert response.status_code == 200 and response.content == b"with trailers"
    session = h.check()
    conn = only(session, "/trailers")
    assert [e.type for e in conn.events][-1] == "http.response.trailers"
    assert conn.events[-1].message["headers"] == [(b"x-checksum", b"abc123")]
    # uvicorn refuses the unknown message by raising into the app; Spy records that too.
    assert conn.outcome == "exception" and conn.error is not None and conn.error.type == "RuntimeError"


@EDGE_SERVERS
def test_max_body_cuts_what_is_kept(harness: MakeHarness, http: httpx.Client, spec: ServerSpec) -> None:
    h = harness(edge_app, max_body=1000)
    with serve(h.spy, spec) as server:
        assert http.post(server.url("/echo"), content=pieces(UPLOAD, 16 * 1024)).json()["length"] == len(
            UPLOAD
        )
        assert http.get(server.url("/binary")).content == BINARY
    session = h.check(max_body=1000)
    upload, binary = http_connections(session)
    requests = [e for e in upload.events if e.type == "http.request"]
    assert all(len(e.message["body"]) <= 1000 for e in requests)
    assert sum(e.field_size("body") for e in requests) == len(UPLOAD) == upload.request_bytes
    assert upload.body_cut and requests[0].message["body"] == UPLOAD[:1000]
    assert binary.response_body() == BINARY and not binary.body_cut


# WebSockets on every WebSocket implementation -----------------------------------------------


@WS_SERVERS
def test_websocket_frames_and_close_code(harness: MakeHarness, spec: ServerSpec) -> None:
    h = harness(edge_app)
    with serve(h.spy, spec) as server, connect(server.ws_url("/ws?room=%C3%A9")) as ws:
        ws.send("héllo")
        assert ws.recv() == "HÉLLO"
        ws.send(b"\x00\x01\xfe\xff")
        assert ws.recv() == b"\xff\xfe\x01\x00"
        ws.send("bye")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
    session = h.check()
    (conn,) = [c for c in session if c.type == "websocket"]
    assert [(e.direction, e.type) for e in conn.events] == [
        ("receive", "websocket.connect"),
        ("send", "websocket.accept"),
        ("receive", "websocket.receive"),
        ("send", "websocket.send"),
        ("receive", "websocket.receive"),
        ("send", "websocket.send"),
        ("receive", "websocket.receive"),
        ("send", "websocket.close"),
    ]
    messages = [e.message for e in conn.events]
    assert messages[2].get("text") == "héllo" and messages[4].get("bytes") == b"\x00\x01\xfe\xff"
    assert messages[5]["bytes"] == b"\xff\xfe\x01\x00"
    assert conn.status == 101 and conn.close_code == 4001
    assert conn.scope["query_string"] == b"room=%C3%A9"
    assert conn.request_bytes == len("héllo") + 4 + len("bye")


@WS_SERVERS
def test_websocket_rejected_before_accept(harness: MakeHarness, spec: ServerSpec) -> None:
    h = harness(edge_app)
    with serve(h.spy, spec) as server:
        with pytest.raises(InvalidStatus) as rejected:
            connect(server.ws_url("/ws-reject"))
        assert rejected.value.response.status_code == 403
        with pytest.raises(InvalidStatus) as denied:
            connect(server.ws_url("/ws-deny"))
    session = h.check()
    reject, deny = [c for c in session if c.type == "websocket"]
    assert [e.type for e in reject.events] == ["websocket.connect", "websocket.close"]
    assert reject.status == 403 and reject.close_code == 1008
    if "websocket.http.response" in deny.scope.get("extensions", {}):
        assert denied.value.response.status_code == 401
        assert [e.type for e in deny.events][1:] == [
            "websocket.http.response.start",
            "websocket.http.response.body",
        ]
        assert deny.status == 401 and deny.response_bytes == len(b"no entry")
    else:  # the server offers no denial response: the app closed instead
        assert denied.value.response.status_code == 403 and deny.status == 403


# Hypercorn ------------------------------------------------------------------------------------


def test_hypercorn_http_and_lifespan(harness: MakeHarness, http: httpx.Client) -> None:
    h = harness(edge_app)
    with serve(h.spy, HYPERCORN) as server:
        assert http.get(server.url(QUERY)).json()["query"]["q"] == ["été ✓"]
        assert http.post(server.url("/echo"), content=pieces(UPLOAD, 16 * 1024)).json()["length"] == len(
            UPLOAD
        )
        assert http.get(server.url("/stream?n=30")).text.count("chunk") == 30
        assert http.get(server.url("/raise")).status_code == 500
        assert (b"x-latin1", LATIN1_VALUE) in http.get(server.url("/latin1")).headers.raw
    session = h.check()
    lifespan = session.connections[0]
    assert [e.type for e in lifespan.events] == CLEAN_LIFESPAN
    failed = only(session, "/raise")
    assert failed.outcome == "exception" and failed.error is not None
    assert failed.scope["extensions"] == {}  # Hypercorn offers no extensions over HTTP/1.1


def test_hypercorn_http2_trailers(harness: MakeHarness) -> None:
    h = harness(edge_app)
    with serve(h.spy, HYPERCORN) as server:

        async def fetch() -> httpx.Response:
            async with httpx.AsyncClient(http1=False, http2=True, timeout=5) as client:
                return await client.get(server.url("/trailers"), headers={"te": "trailers"})

        response = asyncio.run(fetch())
        assert response.http_version == "HTTP/2" and response.content == b"with trailers"
    session = h.check()
    conn = only(session, "/trailers")
    assert conn.scope["http_version"] == "2"
    assert "http.response.trailers" in conn.scope["extensions"]
    assert conn.outcome == "completed"
    assert conn.events[-1].message == {
        "type": "http.response.trailers",
        "headers": [(b"x-checksum", b"abc123")],
        "more_trailers": False,
    }


# Passive: no buffering, no interference between connections ------------------------------------


@pytest.mark.parametrize("spec", [UVICORN_H11, HYPERCORN], ids=str)
def test_streaming_is_not_buffered(harness: MakeHarness, http: httpx.Client, spec: ServerSpec) -> None:
    """The client reads the first chunk while the app still waits to send the second."""
    import threading

    first_read = threading.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"first\n", "more_body": True})
        for _ in range(500):  # up to 5 s; a buffered first chunk would never be read
            if first_read.is_set():
                break
            await asyncio.sleep(0.01)
        await send(
            {"type": "http.response.body", "body": b"second\n" if first_read.is_set() else b"buffered\n"}
        )

    h = harness(app)
    with serve(h.spy, spec) as server, http.stream("GET", server.url("/")) as response:
        chunks = response.iter_raw()
        assert next(chunks) == b"first\n"
        first_read.set()
        assert b"".join(chunks) == b"second\n"
    h.check()


def test_concurrent_connections_are_kept_apart(harness: MakeHarness) -> None:
    from concurrent.futures import ThreadPoolExecutor

    h = harness(edge_app)
    with serve(h.spy, UVICORN_HTTPTOOLS) as server, httpx.Client(timeout=10) as client:

        def fetch(i: int) -> bytes:
            response = client.post(server.url(f"/echo?i={i}"), content=bytes([i]) * (1000 * i))
            return response.content

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(fetch, range(1, 25)))
        with connect(server.ws_url("/ws")) as ws1, connect(server.ws_url("/ws")) as ws2:
            ws1.send("one")
            ws2.send("two")
            assert (ws2.recv(), ws1.recv()) == ("TWO", "ONE")
    assert len(answers) == 24
    session = h.check()
    posts = http_connections(session)
    assert len({c.id for c in session}) == len(session.connections) == 27
    for conn in posts:
        i = int(conn.scope["query_string"].split(b"=")[1])
        assert conn.request_body() == bytes([i]) * (1000 * i)


# The server helper itself -----------------------------------------------------------------------


@pytest.mark.parametrize("spec", [UVICORN_H11, HYPERCORN], ids=str)
def test_server_helper_reports_a_failed_startup(spec: ServerSpec) -> None:
    import threading

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    with pytest.raises(ServerError, match="failed to start"), serve(app, spec, lifespan="on", timeout=5):
        pass
    assert not [t for t in threading.enumerate() if t.name.startswith("server-")]


@pytest.mark.parametrize("spec", [UVICORN_H11, HYPERCORN], ids=str)
def test_server_helper_stops_cleanly(spec: ServerSpec, http: httpx.Client) -> None:
    import threading

    with serve(edge_app, spec) as server:
        assert server.port > 0 and server.host == "127.0.0.1"
        assert http.get(server.url("/binary")).content == BINARY
        assert [t.name for t in threading.enumerate() if t.name.startswith("server-")] == [f"server-{spec}"]
    assert server.errors == []
    assert not [t for t in threading.enumerate() if t.name.startswith("server-")]
    with pytest.raises(httpx.ConnectError):
        http.get(server.url("/binary"))
