"""A Starlette app with path parameters, a body, a stream, an error, a WebSocket and a lifespan."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from tests.apps.raw import AppError


class Pool:
    """Something a lifespan puts in the state that JSON cannot hold."""

    def __repr__(self) -> str:
        return "<Pool size=4>"


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    yield {"pool": Pool(), "greeting": "hi"}


async def item(request: Request) -> Response:
    return JSONResponse({"item_id": request.path_params["item_id"], "q": request.query_params.get("q")})


async def upload(request: Request) -> Response:
    body = await request.body()
    return JSONResponse({"length": len(body)})


async def stream(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(40):
            yield b"part %02d\n" % i

    return StreamingResponse(chunks(), media_type="text/plain")


async def fail(request: Request) -> Response:
    raise AppError("starlette endpoint failed")


async def nothing(request: Request) -> Response:
    return Response(status_code=204)


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    text = await websocket.receive_text()
    await websocket.send_text(text[::-1])
    data = await websocket.receive_bytes()
    await websocket.send_bytes(data + b"\xff")
    await websocket.close(code=4002, reason="bye")


app = Starlette(
    routes=[
        Route("/items/{item_id:int}", item),
        Route("/upload", upload, methods=["POST"]),
        Route("/stream", stream),
        Route("/raise", fail),
        Route("/nothing", nothing),
        WebSocketRoute("/ws", echo),
    ],
    lifespan=lifespan,
)
