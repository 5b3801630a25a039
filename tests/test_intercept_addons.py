"""Addons (``Spy(app, addons=...)``, ``-s FILE``): hooks that edit requests, answer them, edit
responses whole or chunk by chunk, and edit or drop WebSocket messages, on a real uvicorn; an
addon that raises changes nothing and is recorded, and the app never sees its error."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets.sync.client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

import asgispy
from asgispy import Spy
from asgispy.intercept.addons import AddonError, load_addon_file
from asgispy.intercept.exchange import BodyNotRead, Exchange, WebSocketMessage
from tests.servers import serve

pytestmark = pytest.mark.timeout(60)


def make_app(gate: threading.Event | None = None) -> Starlette:
    async def echo(request: Request) -> JSONResponse:
        body = await request.body()
        return JSONResponse(
            {
                "method": request.method,
                "path": request.url.path,
                "query": request.url.query,
                "debug": request.headers.getlist("x-debug"),
                "length": request.headers.get("content-length"),
                "body": body.decode(),
            }
        )

    async def events(request: Request) -> StreamingResponse:
        async def body() -> Any:
            yield b"data: first\n\n"
            # the next event waits for the client to have read the first: a held stream hangs here
            while gate is not None and not gate.is_set():
                await asyncio.sleep(0.01)
            yield b"data: second\n\n"

        return StreamingResponse(body(), media_type="text/event-stream")

    async def chat(ws: WebSocket) -> None:
        await ws.accept()
        try:
            while True:
                text = await ws.receive_text()
                await ws.send_text(f"app got {text}")
        except WebSocketDisconnect:
            pass

    return Starlette(
        routes=[
            Route("/events", events),
            Route("/{path:path}", echo, methods=["GET", "POST", "PUT"]),
            WebSocketRoute("/chat", chat),
        ]
    )


class Rewrite:
    """Edits what the app sees: method, path, query, headers and body."""

    match = "path:/old*"

    def request(self, exchange: Exchange) -> None:
        request = exchange.request
        request.method = "PUT"
        request.path = request.path.replace("/old", "/new")
        request.query = "edited=1"
        request.headers.add("X-Debug", "one")
        request.headers.add("x-debug", "two")
        request.body = request.body + b" (and more)"


class Answer:
    """Answers /cached itself; the app is never called."""

    name = "cache"

    async def request(self, exchange: Exchange) -> None:
        await asyncio.sleep(0)
        if exchange.request.path == "/cached":
            exchange.respond(203, {"x-from": "addon"}, "from the addon")


class Louder:
    """Rewrites whole responses, and each chunk of a streamed one."""

    def response(self, exchange: Exchange) -> None:
        response = exchange.response
        assert response is not None
        response.headers["x-seen"] = "yes"
        if response.streaming:
            exchange.state["streamed"] = True
            return
        assert response.body is not None
        response.body = response.body.replace(b'"path"', b'"PATH"') + b" "
        if exchange.request.path == "/teapot":
            response.status = 418

    def response_chunk(self, exchange: Exchange, chunk: bytes) -> bytes:
        return chunk.upper()


def test_a_request_hook_edits_what_the_app_sees_and_the_client_keeps_its_own(tmp_path: Path) -> None:
    spy = Spy(make_app(), addons=[Rewrite()], address=False)
    with serve(spy) as server:
        answer = httpx.post(server.url("/old/thing?a=b"), content=b"payload", timeout=10)
    assert answer.json() == {
        "method": "PUT",
        "path": "/new/thing",
        "query": "edited=1",
        "debug": ["one", "two"],
        "length": str(len(b"payload (and more)")),
        "body": "payload (and more)",
    }
    conn = next(c for c in asgispy.load(spy.export(tmp_path / "s.json")).connections if c.type == "http")
    assert (conn.method, conn.path, conn.request_body()) == ("POST", "/old/thing", b"payload")
    app_side = conn.layers[1]
    assert app_side.scope["method"] == "PUT" and app_side.scope["path"] == "/new/thing"
    assert [i["what"] for i in conn.interventions] == [
        "request: method POST → PUT, path /old/thing → /new/thing, query, headers, body 7 → 18 bytes"
    ]


def test_a_request_hook_answers_without_the_app_and_matches_limit_addons() -> None:
    spy = Spy(make_app(), addons=[Answer(), Rewrite()], address=False)
    with serve(spy) as server, httpx.Client(base_url=server.base_url, timeout=10) as client:
        cached = client.get("/cached")
        assert (cached.status_code, cached.headers["x-from"], cached.text) == (203, "addon", "from the addon")
        plain = client.get("/plain?x=1")  # Rewrite's match keeps it away from /plain
        assert plain.json()["path"] == "/plain" and plain.json()["query"] == "x=1"
    kinds = {r.scope.get("path"): [i["what"] for i in r.interventions] for r in spy.records}
    assert kinds["/cached"] == ["answered 203 without the app"]
    assert kinds["/plain"] == []


def test_a_response_hook_edits_whole_responses_and_content_length_follows() -> None:
    spy = Spy(make_app(), addons=[Louder()], address=False)
    with serve(spy) as server, httpx.Client(base_url=server.base_url, timeout=10) as client:
        answer = client.get("/teapot")
    assert answer.status_code == 418
    assert answer.headers["x-seen"] == "yes"
    assert answer.text.startswith('{"method":"GET","PATH":"/teapot"') and answer.text.endswith(" ")
    assert answer.headers["content-length"] == str(len(answer.content))


def test_a_streamed_response_is_never_held_and_its_chunks_go_through_the_chunk_hook() -> None:
    gate = threading.Event()
    spy = Spy(make_app(gate), addons=[Louder()], address=False)
    with (
        serve(spy) as server,
        httpx.Client(timeout=10) as client,
        client.stream("GET", server.url("/events")) as stream,
    ):
        assert stream.headers["x-seen"] == "yes"
        lines = stream.iter_lines()
        assert next(lines) == "DATA: FIRST"  # arrives while the app still waits for the gate
        gate.set()
        assert [line for line in lines if line] == ["DATA: SECOND"]


def test_websocket_messages_are_edited_and_dropped_either_way() -> None:
    class Censor:
        def websocket_message(self, exchange: Exchange, message: WebSocketMessage) -> Any:
            if message.text == "drop me":
                return None
            if message.from_client:
                return message.text.replace("cat", "dog") if message.text else message
            return WebSocketMessage(False, text=f"{message.text}!")

    spy = Spy(make_app(), addons=[Censor()], address=False)
    with serve(spy) as server, websockets.sync.client.connect(server.ws_url("/chat")) as ws:
        ws.send("drop me")
        ws.send("my cat")
        assert ws.recv(timeout=5) == "app got my dog!"
    record = next(r for r in spy.records if r.type == "websocket")
    assert [i["what"] for i in record.interventions] == [
        "dropped a message from the client",
        "edited a message from the client",
        "edited a message from the app",
    ]


def test_an_addon_that_raises_changes_nothing_and_is_recorded(tmp_path: Path) -> None:
    class Broken:
        def request(self, exchange: Exchange) -> None:
            exchange.request.path = "/half-done"
            raise RuntimeError("addon bug")

        def response(self, exchange: Exchange) -> None:
            raise ValueError("another")

    spy = Spy(make_app(), addons=[Broken()], address=False)
    with serve(spy) as server:
        answer = httpx.get(server.url("/fine"), timeout=10)
    assert answer.status_code == 200 and answer.json()["path"] == "/fine"  # as if the hooks had not run
    conn = next(c for c in asgispy.load(spy.export(tmp_path / "s.json")).connections if c.type == "http")
    assert conn.error is None and conn.outcome == "completed"  # the app saw no exception
    failures = [(i["what"], "RuntimeError: addon bug" in i["traceback"]) for i in conn.interventions]
    assert failures[0] == ("request hook raised RuntimeError: addon bug", True)
    assert failures[1][0] == "response hook raised ValueError: another"


def test_a_hook_that_reads_a_body_it_was_not_given_gets_a_clear_error() -> None:
    class Sneaky:
        def request(self, exchange: Exchange) -> None:
            read = getattr(exchange.request, "bo" + "dy")  # not named in the code: not read for it
            exchange.state["read"] = read

    spy = Spy(make_app(), addons=[Sneaky()], address=False)
    with serve(spy) as server:
        answer = httpx.post(server.url("/upload"), content=b"kept for the app", timeout=10)
    assert answer.json()["body"] == "kept for the app"
    record = next(r for r in spy.records if r.type == "http")
    assert "BodyNotRead" in record.interventions[0]["what"]
    assert BodyNotRead.__name__ in record.interventions[0]["traceback"]


ADDON_FILE = """
from asgispy.intercept.exchange import Exchange

class Tag:
    match = "method:GET"

    def __init__(self, value):
        self.value = value

    def request(self, exchange: Exchange) -> None:
        exchange.request.headers.add("x-debug", self.value)

addons = [Tag("first"), Tag("second")]
"""

FUNCTIONS_FILE = """
def response(exchange):
    exchange.response.headers["x-file"] = "functions"
"""


def test_addon_files_give_their_addons_list_or_their_own_functions(tmp_path: Path) -> None:
    listed = tmp_path / "listed.py"
    listed.write_text(ADDON_FILE)
    functions = tmp_path / "functions.py"
    functions.write_text(FUNCTIONS_FILE)
    assert [a.name for a in load_addon_file(listed)] == ["Tag", "Tag"]
    spy = Spy(make_app(), addons=[listed, str(functions)], address=False)
    with serve(spy) as server, httpx.Client(base_url=server.base_url, timeout=10) as client:
        answer = client.get("/x")
        assert answer.json()["debug"] == ["first", "second"]
        assert answer.headers["x-file"] == "functions"
        assert client.post("/x", content=b"").json()["debug"] == []  # match = "method:GET"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("x = 1\n", "defines none of the hooks"),
        ("def request(:\n", "SyntaxError"),
        (
            "class A:\n    match = 'status:zzz'\n    def request(self, e): pass\naddons = [A()]\n",
            "match 'status:zzz'",
        ),
        ("addons = 3\n", "`addons` must be a list"),
    ],
)
def test_a_bad_addon_file_is_a_clear_error(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "addon.py"
    path.write_text(text)
    with pytest.raises(AddonError) as error:
        load_addon_file(path)
    assert problem in str(error.value)
