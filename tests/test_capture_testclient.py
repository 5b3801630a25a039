"""Starlette's and FastAPI's TestClient cannot tell a Spy-wrapped app from the bare one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from tests.apps.fastapi_app import app as fastapi_app
from tests.apps.raw import BINARY, AppError
from tests.apps.recording import Harness
from tests.apps.starlette_app import app as starlette_app

MakeHarness = Callable[..., Harness]
APPS = pytest.mark.parametrize("app", [starlette_app, fastapi_app], ids=["starlette", "fastapi"])

REQUESTS: list[tuple[str, str, bytes | None]] = [
    ("GET", "/items/3?q=%C3%A9", None),
    ("GET", "/items/not-a-number", None),
    ("POST", "/upload", BINARY * 100),
    ("POST", "/upload", b""),
    ("GET", "/nothing", None),
    ("HEAD", "/items/3", None),
    ("GET", "/stream", None),
    ("DELETE", "/upload", None),
]


def exchange(app: Any) -> list[tuple[int, list[tuple[bytes, bytes]], bytes]]:
    """Run REQUESTS (and a lifespan) through TestClient; what a test would assert on."""
    out = []
    with TestClient(app) as client:
        for method, path, body in REQUESTS:
            response = client.request(method, path, content=body)
            out.append((response.status_code, response.headers.raw, response.content))
    return out


def talk(app: Any) -> tuple[list[Any], int]:
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        ws.send_text("hello")
        first = ws.receive_text()
        ws.send_bytes(b"\x00\xff")
        second = ws.receive_bytes()
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
    return [first, second], closed.value.code


@APPS
def test_http_responses_are_identical(harness: MakeHarness, app: Any) -> None:
    h = harness(app)
    assert exchange(h.spy) == exchange(app)
    session = h.check()
    lifespan = session.connections[0]
    assert lifespan.type == "lifespan" and lifespan.outcome == "completed"
    assert [e.type for e in lifespan.events][-1] == "lifespan.shutdown.complete"
    statuses = [c.status for c in session if c.type == "http"]
    # Starlette's int convertor does not match "not-a-number" (404); FastAPI validates it (422) and,
    # unlike Starlette, adds no HEAD to GET routes.
    wanted = {
        starlette_app: [200, 404, 200, 200, 204, 200, 200, 405],
        fastapi_app: [200, 422, 200, 200, 204, 405, 404, 405],
    }
    assert statuses == wanted[app]


@APPS
def test_websocket_is_identical(harness: MakeHarness, app: Any) -> None:
    h = harness(app)
    assert talk(h.spy) == talk(app)
    session = h.check()
    (ws,) = [c for c in session if c.type == "websocket"]
    assert ws.status == 101 and ws.close_code in (4002, 4003) and ws.route == "/ws"


@APPS
def test_server_exceptions_reach_the_test_as_they_would(harness: MakeHarness, app: Any) -> None:
    h = harness(app)
    for target in (app, h.spy):
        with TestClient(target) as client, pytest.raises(AppError):
            client.get("/raise")
        with TestClient(target, raise_server_exceptions=False) as client:
            assert client.get("/raise").status_code == 500
    session = h.check()
    failed = [c for c in session if c.path == "/raise"]
    assert [c.outcome for c in failed] == ["exception", "exception"]


def test_lifespan_state_reaches_the_endpoints(harness: MakeHarness) -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def show(request: Request) -> PlainTextResponse:
        return PlainTextResponse(repr(request.state.pool))

    inner = Starlette(routes=[Route("/", show)], lifespan=starlette_app.router.lifespan_context)
    h = harness(inner)
    with TestClient(h.spy) as client:
        assert client.get("/").text == "<Pool size=4>"
    conn = h.check().connections[1]
    assert conn.scope["state"]["pool"].repr == "<Pool size=4>"
