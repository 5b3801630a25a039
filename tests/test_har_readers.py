"""HAR files as a real consumer reads them.

Traffic is recorded at the real boundary (a real uvicorn, real httpx and websockets clients),
exported as HAR by the Python function and by ``asgispy export`` run as a command, and read
back with haralyzer, a HAR library of the Python ecosystem that knows nothing of asgispy.
Every entry is then checked against two independent truths: what the clients sent and got
(URL, query, headers, bodies, status, the WebSocket conversation, the client's port) and what
Spy recorded (the app's own headers, its timings, its message times). The same files are also
checked against the JSON Schema of HAR 1.2 in tests/test_exports_har.py.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import http
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import websockets.exceptions
import websockets.sync.client
from haralyzer import HarEntry, HarPage, HarParser

import asgispy
from asgispy.codec.jsonform import bytes_text
from asgispy.exports.har import write_har
from asgispy.model.connection import Connection
from tests.servers import UVICORN_H11, serve
from tests.test_exports_har import validate
from tests.test_model_timing import TIMEOUT, loaded
from tests.test_replay import asgispy as run_asgispy

SECRETS = {"authorization": "Bearer s3cret-token", "cookie": "sid=s3cret-cookie", "x-api-key": "s3cret-key"}
SET_COOKIE = "session=s3cret-session; Path=/; HttpOnly"
LATIN1 = "text/plain; charset=iso-8859-1"


# The app: raw ASGI, so every byte it sends is the test's own --------------------------------


async def _body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _respond(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] == "websocket":
        await _websocket(scope, receive, send)
        return
    method, path = scope["method"], scope["path"]
    if path == "/upload":
        await _echo_as_it_comes(receive, send)
        return
    body = await _body(receive)
    if path == "/search":
        data = json.dumps({"query": scope["query_string"].decode()}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
        await _respond(send, 200, b"" if method == "HEAD" else data, [*headers, (b"x-trace", b"abc")])
    elif path == "/items" and method == "POST":
        created = json.dumps({"created": json.loads(body)}).encode()
        headers = [(b"content-type", b"application/json"), (b"set-cookie", SET_COOKIE.encode())]
        await _respond(send, 201, created, headers)
    elif path == "/items/1" and method == "DELETE":
        await _respond(send, 204, b"", [])
    elif path == "/form":
        name = dict(parse_qsl(body.decode()))["name"]
        await _respond(
            send, 200, f"thanks {name}".encode(), [(b"content-type", b"text/plain; charset=utf-8")]
        )
    elif path == "/blob":
        await _respond(send, 200, body[::-1], [(b"content-type", b"application/octet-stream")])
    elif path == "/latin":
        await _respond(send, 200, "café, ".encode("latin-1") + body, [(b"content-type", LATIN1.encode())])
    elif path == "/stream":
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        for n in range(3):
            await send({"type": "http.response.body", "body": f"line {n}\n".encode(), "more_body": True})
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b""})
    elif path == "/old":
        await _respond(send, 307, b"", [(b"location", b"/search?q=new")])
    elif path == "/boom":
        raise RuntimeError("the app broke before answering")
    else:
        await _respond(send, 404, b"not found", [(b"content-type", b"text/plain")])


async def _echo_as_it_comes(receive: Any, send: Any) -> None:
    """Answers at once, then streams the request body back as it arrives: the response begins
    before the request has been read, and the HAR's timings must not overlap."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    while True:
        message = await receive()
        more = message.get("more_body", False)
        await send({"type": "http.response.body", "body": message.get("body", b""), "more_body": more})
        if not more:
            return


async def _websocket(scope: Any, receive: Any, send: Any) -> None:
    await receive()  # websocket.connect
    if scope["path"] != "/ws":
        await send({"type": "websocket.close", "code": 1008})  # refused: the client gets a 403
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text == "bye":
            await send({"type": "websocket.close", "code": 4001, "reason": "done"})
            return
        if text is not None:
            await send({"type": "websocket.send", "text": f"echo: {text}"})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"][::-1]})


# Recording: what the clients did, and what Spy saw -------------------------------------------


@dataclass
class Exchange:
    """One HTTP request as the client made it and the response as the client got it."""

    request: httpx.Request
    body: bytes
    response: httpx.Response
    client_port: int


@dataclass
class Conversation:
    """One WebSocket connection as the client saw it: frames in order, from its point of view."""

    url: str
    client_port: int
    frames: list[tuple[str, str | bytes]] = field(default_factory=list)


@dataclass
class Recording:
    """The session file Spy wrote, its connections, and what the clients did meanwhile."""

    session: Path
    connections: list[Connection]
    exchanges: dict[str, Exchange]
    conversation: Conversation
    refused: str
    began: float
    ended: float


def _requests(base: str) -> list[tuple[httpx.Request, bytes]]:
    """Every kind of request the HAR must carry, each tagged with its own x-request-id, and the
    body it sends (a streamed one cannot be read back from the request)."""
    binary = {"content-type": "application/octet-stream"}
    latin = {"content-type": LATIN1}
    query: list[tuple[str, str | int | float | bool | None]] = [
        ("q", "café"),
        ("tag", "a"),
        ("tag", "b"),
        ("empty", ""),
    ]
    parts = [b"part one, ", b"part two"]

    def upload() -> Iterator[bytes]:
        yield parts[0]
        time.sleep(0.02)  # the app has answered by now; the rest of the request comes later
        yield parts[1]

    made = [
        httpx.Request("GET", f"{base}/search", params=query),
        httpx.Request("HEAD", f"{base}/search?q=head"),
        httpx.Request("POST", f"{base}/items", json={"name": "kettle", "price": 3.5}),
        httpx.Request("DELETE", f"{base}/items/1"),
        httpx.Request("POST", f"{base}/form", data={"name": "Ada", "message": "a+b=c & more"}),
        httpx.Request("PUT", f"{base}/blob", content=b"\x00\x01binary\xff\xfe", headers=binary),
        httpx.Request("POST", f"{base}/latin", content="crème brûlée".encode("latin-1"), headers=latin),
        httpx.Request("POST", f"{base}/upload", content=upload(), headers={"content-type": "text/plain"}),
        httpx.Request("GET", f"{base}/stream"),
        httpx.Request("GET", f"{base}/old"),
        httpx.Request("GET", f"{base}/boom"),
        httpx.Request("GET", f"{base}/missing", headers=SECRETS),
    ]
    bodies = []
    for n, request in enumerate(made):
        request.headers["x-request-id"] = str(n)
        bodies.append(b"".join(parts) if request.url.path == "/upload" else request.content)
    return list(zip(made, bodies, strict=True))


def _client_port(response: httpx.Response) -> int:
    address = response.extensions["network_stream"].get_extra_info("client_addr")
    return int(address[1])


def _converse(url: str) -> Conversation:
    with websockets.sync.client.connect(url, open_timeout=TIMEOUT) as ws:
        conversation = Conversation(url, ws.local_address[1])
        for outgoing in ("hello", b"\x00\x01\xfe\xff", "héllo ✓"):
            ws.send(outgoing)
            conversation.frames.append(("send", outgoing))
            conversation.frames.append(("receive", ws.recv(timeout=TIMEOUT)))
        ws.send("bye")
        conversation.frames.append(("send", "bye"))
        with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
            ws.recv(timeout=TIMEOUT)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
    return conversation


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    tmp = tmp_path_factory.mktemp("har-readers")
    spy = asgispy.Spy(app, address=False)
    began = time.time()
    exchanges: dict[str, Exchange] = {}
    with (
        serve(spy, UVICORN_H11, lifespan="on") as server,
        httpx.Client(timeout=TIMEOUT, trust_env=False) as client,
    ):
        for request, body in _requests(server.base_url):
            response = client.send(request, stream=True)
            port = _client_port(response)  # before the server may close the connection
            response.read()
            response.close()
            exchanges[request.headers["x-request-id"]] = Exchange(request, body, response, port)
        conversation = _converse(server.ws_url("/ws"))
        refused = server.ws_url("/ws/refused")
        with pytest.raises(websockets.exceptions.InvalidStatus) as denied:
            websockets.sync.client.connect(refused, open_timeout=TIMEOUT)
        assert denied.value.response.status_code == 403
        connections = loaded(spy, tmp)
    ended = time.time()
    session = spy.export(tmp / "session.json")
    return Recording(session, connections, exchanges, conversation, refused, began, ended)


# The HARs, made three ways, read by haralyzer -------------------------------------------------


def _from_function(recording: Recording, tmp: Path) -> tuple[dict[str, Any], HarParser]:
    path = write_har(tmp / "function.har", asgispy.load(recording.session).connections)
    return json.loads(path.read_text()), HarParser.from_file(str(path))


def _from_command_to_a_file(recording: Recording, tmp: Path) -> tuple[dict[str, Any], HarParser]:
    out = tmp / "command.har"
    result = run_asgispy("export", str(recording.session), "--format", "har", "-o", str(out))
    assert result.returncode == 0, result.stderr
    return json.loads(out.read_text()), HarParser.from_file(str(out))


def _from_command_to_stdout(recording: Recording, tmp: Path) -> tuple[dict[str, Any], HarParser]:
    result = run_asgispy("export", str(recording.session), "--format", "har")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), HarParser.from_string(result.stdout)


MAKERS = {
    "function": _from_function,
    "command-file": _from_command_to_a_file,
    "command-stdout": _from_command_to_stdout,
}


@pytest.fixture(scope="module", params=list(MAKERS))
def har(
    request: pytest.FixtureRequest, recording: Recording, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], HarParser]:
    return MAKERS[request.param](recording, tmp_path_factory.mktemp(request.param))


def entries(parser: HarParser) -> list[HarEntry]:
    """Every entry, as haralyzer groups them: no pages in the log, so all on its "unknown" page."""
    (page,) = parser.pages
    assert page.page_id == "unknown"
    return list(page.entries)


def by_request_id(parser: HarParser) -> dict[str, HarEntry]:
    found = {}
    for entry in entries(parser):
        if entry.url.startswith("http"):
            request_id = entry.request.get_header_value("x-request-id")
            assert request_id is not None
            found[request_id] = entry
    return found


def recorded(recording: Recording, entry: HarEntry) -> Connection:
    (conn,) = [c for c in recording.connections if c.id == entry["_asgispy"]["id"]]
    return conn


def body_of(part: dict[str, Any]) -> bytes:
    """The bytes of a HAR ``content`` or ``postData``: its text, base64-decoded when it says so."""
    text = part.get("text", "")
    assert isinstance(text, str)
    return base64.b64decode(text, validate=True) if part.get("encoding") == "base64" else text.encode()


def started(entry: HarEntry) -> float:
    when = entry.startTime
    assert isinstance(when, datetime.datetime) and when.tzinfo is not None
    return when.timestamp()


# The checks -----------------------------------------------------------------------------------


def test_the_log_is_what_haralyzer_expects(
    har: tuple[dict[str, Any], HarParser], recording: Recording
) -> None:
    document, parser = har
    validate(document)
    assert parser.version == "1.2"
    assert parser.creator == {"name": "asgispy", "version": asgispy.__version__}
    found = entries(parser)
    kept = [c for c in recording.connections if c.type in ("http", "websocket")]
    assert len(kept) == len(recording.exchanges) + 2  # every request, the conversation, the refusal
    assert sorted(e["_asgispy"]["id"] for e in found) == sorted(c.id for c in kept)  # no lifespan
    assert [e["_asgispy"]["id"] for e in found] == [e["_asgispy"]["id"] for e in document["log"]["entries"]]
    assert [started(e) for e in found] == sorted(started(e) for e in found)


def test_every_http_entry_is_the_exchange_the_client_made(
    har: tuple[dict[str, Any], HarParser], recording: Recording
) -> None:
    _, parser = har
    found = by_request_id(parser)
    assert set(found) == set(recording.exchanges)
    for request_id, exchange in recording.exchanges.items():
        entry, sent, got = found[request_id], exchange.request, exchange.response
        conn = recorded(recording, entry)
        request, response = entry.request, entry.response

        # The request line and the query, as the client sent them.
        assert request.method == sent.method
        assert entry.url == str(sent.url)
        assert request.httpVersion == got.http_version == "HTTP/1.1"
        assert request.queryString == [{"name": k, "value": v} for k, v in sent.url.params.multi_items()]

        # Every header the client sent, in order, secrets masked; the app's own response headers.
        expected = [
            (k.decode().lower(), "[redacted]" if k.decode().lower() in SECRETS else v.decode())
            for k, v in sent.headers.raw
        ]
        assert [(h["name"], h["value"]) for h in request.headers] == expected
        assert [(h["name"].encode(), h["value"].encode()) for h in response.headers] == conn.response_headers
        for header in response.headers:
            if header["name"] == "set-cookie":
                assert header["value"] == "[redacted]" and got.headers["set-cookie"] == SET_COOKIE
            else:
                assert got.headers.get_list(header["name"]) == [header["value"]]
        assert request.headersSize == response.headersSize == -1

        # The request body, byte for byte, however it had to be written.
        assert request.bodySize == len(exchange.body)
        if exchange.body:
            post = request.raw_entry["postData"]
            assert request.mimeType == sent.headers["content-type"]
            assert body_of(post) == exchange.body
            assert (post.get("encoding") == "base64") == (bytes_text(exchange.body) is None)
            if request.mimeType == "application/x-www-form-urlencoded":
                assert post["params"] == [
                    {"name": k, "value": v} for k, v in parse_qsl(exchange.body.decode())
                ]
        else:
            assert request.mimeType is None and request.text is None

        # The response: status and reason as the client got them, the body it read.
        if request.url.endswith("/boom"):
            # The app raised before answering: the 500 the client got was the server's, not the app's.
            assert got.status_code == 500 and conn.status is None
            assert (entry.status, response.statusText, response.bodySize) == (0, "", -1)
            assert entry["comment"] == "no response was sent (exception)"
            assert entry["_asgispy"]["error"]["type"] == "RuntimeError"
            continue
        assert entry.status == response.status == got.status_code == conn.status
        assert response.statusText == got.reason_phrase == http.HTTPStatus(got.status_code).phrase
        assert response.redirectURL == got.headers.get("location", "")
        assert response.mimeType == got.headers.get("content-type", "x-unknown")
        assert body_of(response.raw_entry["content"]) == got.content
        assert response.contentSize == response.bodySize == len(got.content) == conn.response_bytes
        assert (response.textEncoding == "base64") == (bytes_text(got.content) is None)
        assert response.formatted.startswith(f"HTTP/1.1 {got.status_code} {got.reason_phrase}\n")

        # The TCP connection (the client's port: keep-alive requests share it) and the server.
        assert entry.port == exchange.client_port
        assert entry.serverAddress == "127.0.0.1"
        assert entry.cache == {}


def test_non_utf8_and_binary_bodies_are_base64(
    har: tuple[dict[str, Any], HarParser], recording: Recording
) -> None:
    _, parser = har
    found = by_request_id(parser)
    latin = next(e for e in found.values() if e.url.endswith("/latin"))
    assert latin.request.raw_entry["postData"]["encoding"] == "base64"
    assert body_of(latin.request.raw_entry["postData"]).decode("latin-1") == "crème brûlée"
    assert latin.response.textEncoding == "base64" and latin.response.mimeType == LATIN1
    assert body_of(latin.response.raw_entry["content"]).decode("latin-1") == "café, crème brûlée"
    blob = next(e for e in found.values() if e.url.endswith("/blob"))
    assert blob.response.textEncoding == "base64"
    assert base64.b64decode(blob.response.text) == b"\xfe\xffyranib\x01\x00"
    form = next(e for e in found.values() if e.url.endswith("/form"))
    assert form.request.text == "name=Ada&message=a%2Bb%3Dc+%26+more"
    assert form.request.raw_entry["postData"]["params"] == [
        {"name": "name", "value": "Ada"},
        {"name": "message", "value": "a+b=c & more"},
    ]
    assert form.response.text == "thanks Ada" and form.response.textEncoding is None
    # Empty bodies say they are empty, so readers that show the text have one to show.
    for ending in ("/items/1", "/old", "/search?q=head"):
        empty = next(e for e in found.values() if e.url.endswith(ending))
        assert empty.response.text == "" and empty.response.contentSize == 0


def test_secrets_stay_redacted_for_the_reader(har: tuple[dict[str, Any], HarParser]) -> None:
    document, parser = har
    text = json.dumps(document)
    for secret in (*SECRETS.values(), SET_COOKIE):
        assert secret.split("=")[-1] not in text
    entry = next(e for e in by_request_id(parser).values() if e.url.endswith("/missing"))
    for name in SECRETS:
        assert entry.request.get_header_value(name) == "[redacted]"
    assert entry.request.cookies == [] and entry.request["comment"] == "Cookie header redacted when recorded"
    created = next(e for e in by_request_id(parser).values() if e.url.endswith("/items"))
    assert created.response.get_header_value("Set-Cookie") == "[redacted]"
    assert created.response["cookies"] == []


def test_timings_add_up_to_the_time_and_fit_the_recording(
    har: tuple[dict[str, Any], HarParser], recording: Recording
) -> None:
    _, parser = har
    for entry in entries(parser):
        conn = recorded(recording, entry)
        timings = entry.timings
        assert {timings[k] for k in ("blocked", "dns", "connect", "ssl")} == {-1}  # an app cannot see them
        assert min(timings["send"], timings["wait"], timings["receive"]) >= 0
        assert entry.time == pytest.approx(timings["send"] + timings["wait"] + timings["receive"], abs=0.002)
        assert conn.duration is not None and entry.time <= conn.duration * 1000 + 0.002
        # startedDateTime is the connection's start, to the millisecond, within the test's own clock.
        assert started(entry) == pytest.approx(conn.started, abs=0.001)
        assert recording.began - 0.001 <= started(entry) <= recording.ended
        if entry.url.endswith("/stream"):
            assert timings["receive"] > 0  # four body messages, the last one after three sleeps
    # haralyzer's own arithmetic over them works.
    (page,) = parser.pages
    assert page.get_load_time(request_type="GET", asynchronous=False) == pytest.approx(
        sum(e.time for e in page.entries if e.request.method == "GET")
    )


def test_haralyzer_filters_find_what_the_clients_did(
    har: tuple[dict[str, Any], HarParser], recording: Recording
) -> None:
    _, parser = har
    page: HarPage = parser.pages[0]
    exchanges = recording.exchanges.values()
    posts = {e.request.headers["x-request-id"] for e in exchanges if e.request.method == "POST"}
    assert {e.request.get_header_value("x-request-id") for e in page.post_requests} == posts
    created = page.filter_entries(status_code="201")
    assert [e.url for e in created] == [
        str(e.request.url) for e in exchanges if e.response.status_code == 201
    ]
    assert page.duplicate_url_request == {}
    assert page.get_total_size(page.entries) == sum(
        len(e.response.content) for e in exchanges if e.request.url.path != "/boom"
    )


def test_websocket_messages_are_the_conversation(
    har: tuple[dict[str, Any], HarParser], recording: Recording
) -> None:
    _, parser = har
    conversation = recording.conversation
    (entry,) = [e for e in entries(parser) if e.url == conversation.url]
    conn = recorded(recording, entry)
    assert entry["_resourceType"] == "websocket"
    assert (entry.request.method, entry.status, entry.response.statusText) == (
        "GET",
        101,
        "Switching Protocols",
    )
    assert entry.response.text == "" and entry.response.contentSize == 0
    assert entry.port == conversation.client_port
    assert entry["comment"] == "closed with code 4001"
    assert entry["_asgispy"]["closeCode"] == conn.close_code == 4001

    messages = entry["_webSocketMessages"]
    # As Chrome writes them: "send" is what the client sent, opcode 1 text and 2 binary (base64).
    assert [(m["type"], m["opcode"], m["data"]) for m in messages] == [
        (kind, 1, data) if isinstance(data, str) else (kind, 2, base64.b64encode(data).decode())
        for kind, data in conversation.frames
    ]
    # Each at the time Spy recorded its message, within the entry's span.
    frames = [e for e in conn.events if e.type in ("websocket.receive", "websocket.send")]
    assert [m["type"] for m in messages] == [
        "send" if e.direction == "receive" else "receive" for e in frames
    ]
    assert [m["time"] for m in messages] == pytest.approx([conn.started + e.t for e in frames], abs=1e-5)
    assert [m["time"] for m in messages] == sorted(m["time"] for m in messages)
    assert (
        started(entry) - 0.001
        <= messages[0]["time"]
        <= messages[-1]["time"]
        <= started(entry) + entry.time / 1000 + 0.002
    )


def test_a_refused_websocket_is_the_403_the_client_got(
    har: tuple[dict[str, Any], HarParser], recording: Recording
) -> None:
    _, parser = har
    (entry,) = [e for e in entries(parser) if e.url == recording.refused]
    assert (entry.status, entry.response.statusText) == (403, "Forbidden")
    assert entry["_webSocketMessages"] == [] and entry.response.text == ""
    assert entry["_asgispy"]["closeCode"] == 1008
