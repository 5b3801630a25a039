"""Rules (``Spy(app, rules=...)``, ``--rules FILE``): mocks, delays, throttles, faults and
WebSocket closes and drops, on a real uvicorn with real clients, each recorded on its connection."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets.sync.client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

import asgispy
from asgispy import Spy
from asgispy.intercept.rules import RuleError, load_rules, rules_from
from tests.servers import serve

pytestmark = pytest.mark.timeout(60)


class Seen:
    """What the app itself saw: calls per path, and what its receive() returned."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.received: list[str] = []
        self.ws: list[Any] = []


def make_app(seen: Seen) -> Starlette:
    async def hello(request: Request) -> JSONResponse:
        seen.calls[request.url.path] = seen.calls.get(request.url.path, 0) + 1
        return JSONResponse({"hello": request.url.path})

    async def big(request: Request) -> PlainTextResponse:
        seen.calls["/big"] = seen.calls.get("/big", 0) + 1
        return PlainTextResponse("x" * 1000)

    async def slow_upload(request: Request) -> PlainTextResponse:
        seen.calls["/upload"] = seen.calls.get("/upload", 0) + 1
        message = await request.receive()
        seen.received.append(message["type"])
        message = await request.receive()
        seen.received.append(message["type"])
        return PlainTextResponse("nobody reads this")

    async def chunks(request: Request) -> StreamingResponse:
        async def body() -> Any:
            for i in range(10):
                yield f"chunk {i:02d}\n".encode()
                await asyncio.sleep(0)

        return StreamingResponse(body(), media_type="text/plain")

    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        try:
            while True:
                text = await ws.receive_text()
                seen.ws.append(text)
                await ws.send_text(f"echo {text}")
        except WebSocketDisconnect as exc:
            seen.ws.append(("disconnect", exc.code))

    return Starlette(
        routes=[
            Route("/hello", hello),
            Route("/down", hello),
            Route("/slow", hello),
            Route("/big", big),
            Route("/upload", slow_upload, methods=["POST"]),
            Route("/chunks", chunks),
            WebSocketRoute("/ws", echo),
            WebSocketRoute("/ws-broken", echo),
        ]
    )


RULES = """
[[rule]]
name = "orders down"
match = "path:/down"
respond = { status = 503, headers = { "retry-after" = "5" }, body = "try later" }

[[rule]]
match = "path:/down"
respond = { status = 500, body = "never: the first answering rule wins" }

[[rule]]
match = "path:/slow"
delay = 0.3

[[rule]]
match = "path:/slow"
delay = 0.2

[[rule]]
match = "path:/big"
throttle = 2000

[[rule]]
match = "path:/upload"
fault = "disconnect"

[[rule]]
match = "path:/chunks"
fault = "abort"
after = 25

[[rule]]
match = "path:/ws-broken"
close = 1011

[[rule]]
match = "path:/ws"
drop = "secret"
"""


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(RULES)
    return path


def test_each_rule_does_what_it_says_and_is_recorded(rules_file: Path, tmp_path: Path) -> None:
    seen = Seen()
    spy = Spy(make_app(seen), rules=rules_file, address=False)
    with serve(spy) as server, httpx.Client(base_url=server.base_url, timeout=10) as client:
        down = client.get("/down")
        assert (down.status_code, down.headers["retry-after"], down.text) == (503, "5", "try later")
        assert "/down" not in seen.calls  # a mock: the app is not called

        started = time.monotonic()
        assert client.get("/slow").json() == {"hello": "/slow"}
        assert time.monotonic() - started >= 0.5  # the delays of both matching rules add up

        started = time.monotonic()
        big = client.get("/big")
        assert big.text == "x" * 1000
        assert time.monotonic() - started >= 0.4  # 1000 bytes at 2000 B/s

        upload = client.post("/upload", content=b"data")
        assert upload.status_code == 499
        assert seen.received == ["http.disconnect", "http.disconnect"]

        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/chunks")

        assert client.get("/hello").json() == {"hello": "/hello"}

        with websockets.sync.client.connect(server.ws_url("/ws")) as ws:
            ws.send("hello")
            assert ws.recv(timeout=5) == "echo hello"
            ws.send("my secret")  # dropped before the app
            ws.send("again")
            assert ws.recv(timeout=5) == "echo again"
        with websockets.sync.client.connect(server.ws_url("/ws-broken")) as ws:
            with pytest.raises(websockets.exceptions.ConnectionClosedError) as closed:
                ws.recv(timeout=5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011

    assert "my secret" not in seen.ws and seen.ws[:2] == ["hello", "again"]
    path = spy.export(tmp_path / "session.json")
    session = asgispy.load(path)
    by_path = {c.path: c for c in session.connections if c.type != "lifespan"}
    done = {p: [(i["by"], i["what"]) for i in c.interventions] for p, c in by_path.items()}
    assert done["/down"] == [("orders down", "respond 503 without the app")]
    assert done["/slow"] == [("rule 3", "delay 0.3s"), ("rule 4", "delay 0.2s")]
    assert done["/big"] == [("rule 5", "throttle 2000 B/s")]
    assert done["/upload"] == [("rule 6", "told the app the client disconnected")]
    assert done["/chunks"] == [("rule 7", "aborted the response after 25 body bytes")]
    assert done["/hello"] == []
    assert done["/ws"] == [("rule 9", "dropped a message from the client")]
    assert done["/ws-broken"] == [("rule 8", "closed the socket with 1011")]
    # what the client got is what Spy recorded on top: the cut body, the 499
    assert by_path["/chunks"].response_body() == b"chunk 00\nchunk 01\nchunk 0"
    assert by_path["/upload"].status == 499
    # and what the app saw is the layer below asgispy's own
    layers = by_path["/ws"].layers
    assert [layer.name for layer in layers] == ["asgispy intercept", "Starlette"]
    app_side = [e.message.get("text") for e in layers[1].events if e.type == "websocket.receive"]
    assert app_side == ["hello", "again"]
    client_side = [e.message.get("text") for e in by_path["/ws"].events if e.type == "websocket.receive"]
    assert client_side == ["hello", "my secret", "again"]


def test_rules_turn_off_and_on_while_the_app_runs() -> None:
    seen = Seen()
    spy = Spy(make_app(seen), rules=[{"match": "path:/hello", "respond": {"status": 418}}], address=False)
    assert spy.interception is not None
    with serve(spy) as server, httpx.Client(base_url=server.base_url, timeout=10) as client:
        assert client.get("/hello").status_code == 418
        spy.interception.rules.toggle(0)
        assert client.get("/hello").status_code == 200
        spy.interception.rules.toggle(0, True)
        assert client.get("/hello").status_code == 418
    assert seen.calls == {"/hello": 1}


def test_a_json_mock_gets_its_content_type() -> None:
    rules = rules_from({"rule": [{"respond": {"status": 200, "json": {"ok": True}}}]})
    spy = Spy(make_app(Seen()), rules=rules, address=False)
    with serve(spy) as server:
        answer = httpx.get(server.url("/anything"), timeout=10)
    assert answer.headers["content-type"] == "application/json"
    assert json.loads(answer.content) == {"ok": True}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[[rule]]\nmatch = "path:/a"\n', "one action of respond, delay"),
        ("[[rule]]\ndelay = 1\nthrottle = 2\n", "found delay, throttle"),
        ('[[rule]]\nmatch = "status:abc"\ndelay = 1\n', "rule 1: match 'status:abc'"),
        ('[[rule]]\nfault = "explode"\n', 'fault is "disconnect" or "abort"'),
        ("[[rule]]\nclose = 99\n", "close code from 1000 to 4999"),
        ("[[rule]]\ndelay = 1\nspeed = 2\n", "unknown key speed"),
        ("[[rule]]\ndelay = 1\nafter = 3\n", 'after goes with fault = "abort"'),
        ("[[rule]\n", "not valid TOML"),
        ("[[rules]]\ndelay = 1\n", "unknown table rules"),
    ],
)
def test_a_bad_rules_file_is_a_clear_error(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    with pytest.raises(RuleError) as error:
        load_rules(path)
    assert problem in str(error.value)
    assert str(path) in str(error.value)


def test_a_missing_rules_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="does not exist"):
        Spy(make_app(Seen()), rules=tmp_path / "nope.toml", address=False)


def test_what_a_rule_did_is_in_the_exports(tmp_path: Path) -> None:
    from asgispy.exports.otlp_spans import span_plan

    spy = Spy(make_app(Seen()), rules=[{"match": "path:/down", "respond": {"status": 503}}], address=False)
    with serve(spy) as server:
        httpx.get(server.url("/down"), timeout=10)
    (conn,) = [c for c in asgispy.load(spy.export(tmp_path / "s.json")).connections if c.type == "http"]
    plan = span_plan(conn)
    (change,) = [attrs for name, _, attrs in plan.events if name == "asgispy.intervention"]
    assert change == {"asgispy.by": "rule 1", "asgispy.what": "respond 503 without the app"}
    assert [t for _, t, _ in plan.events] == sorted(t for _, t, _ in plan.events)


def test_what_a_rule_did_is_in_the_har_too(tmp_path: Path) -> None:
    from asgispy.exports.har import to_har

    spy = Spy(make_app(Seen()), rules=[{"match": "path:/down", "respond": {"status": 503}}], address=False)
    with serve(spy) as server:
        httpx.get(server.url("/down"), timeout=10)
    session = asgispy.load(spy.export(tmp_path / "s.json"))
    (entry,) = to_har(session)["log"]["entries"]
    assert entry["response"]["status"] == 503
    assert [i["what"] for i in entry["_asgispy"]["interventions"]] == ["respond 503 without the app"]
