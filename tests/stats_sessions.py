"""Sessions for the statistics tests: a small orders API served by a real uvicorn under Spy, with
real clients, so the durations, statuses and sizes are what a server really produced.

``build(slow)`` answers ``GET /orders/{id}`` after ``slow`` seconds more: recorded once fast and
once slow, the two sessions are the "before" and "after" of a change that made it slower.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import httpx
import websockets.sync.client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from asgispy import Spy
from asgispy.model.connection import Connection
from tests.servers import UVICORN_H11, serve
from tests.test_model_timing import TIMEOUT, loaded

#: what the traffic sends: order ids (404 past 90), and how many of each other request
ORDER_IDS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 98, 99)
CREATES = 3
BOOMS = 2


def build(slow: float = 0.0) -> Starlette:
    async def order(request: Request) -> JSONResponse:
        order_id = request.path_params["order_id"]
        await asyncio.sleep(slow + 0.001 * (order_id % 4))
        if order_id > 90:
            return JSONResponse({"detail": "no such order"}, status_code=404)
        return JSONResponse({"id": order_id, "items": ["kettle"] * order_id})

    async def create(request: Request) -> JSONResponse:
        return JSONResponse({"created": (await request.body()).decode()}, status_code=201)

    async def boom(request: Request) -> PlainTextResponse:
        raise RuntimeError("the orders database is gone")

    async def feed(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    return Starlette(
        routes=[
            Route("/orders/{order_id:int}", order),
            Route("/orders", create, methods=["POST"]),
            Route("/boom", boom),
            WebSocketRoute("/feed", feed),
        ]
    )


def record(path: Path, slow: float = 0.0) -> Path:
    """Serve ``build(slow)`` under uvicorn, send the traffic, and export the session to ``path``."""
    spy = Spy(build(slow), address=False)
    with serve(spy, UVICORN_H11) as server, httpx.Client(timeout=TIMEOUT) as client:
        for n in ORDER_IDS:
            client.get(server.url(f"/orders/{n}"))
        for n in range(CREATES):
            client.post(server.url("/orders"), content=b"x" * (10 * (n + 1)))
        for _ in range(BOOMS):
            assert client.get(server.url("/boom")).status_code == 500
        with websockets.sync.client.connect(server.ws_url("/feed"), open_timeout=TIMEOUT) as ws:
            ws.send("hello")
            ws.recv(timeout=TIMEOUT)
        loaded(spy, path.parent)
    return spy.export(path)


def rank(values: list[float], p: int) -> float | None:
    """The nearest-rank percentile, worked out here from the sorted values, for checking."""
    ordered = sorted(values)
    return ordered[math.ceil(p * len(ordered) / 100) - 1] if ordered else None


def route_key(conn: Connection) -> str:
    """The key a route table shows for ``conn``, from the scope and handler the test sees."""
    method = conn.scope.get("method") if conn.type == "http" else "WS"
    template = (conn.handler or {}).get("route") or conn.scope["path"]
    return f"{method} {template}"
