"""A FastAPI app: typed path and query parameters, a body, an error, a WebSocket, a lifespan."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request, Response, WebSocket

from tests.apps.raw import AppError


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    yield {"ready": True}


app = FastAPI(lifespan=lifespan, openapi_url=None)


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None) -> dict[str, Any]:
    return {"item_id": item_id, "q": q}


@app.post("/upload")
async def upload(request: Request) -> dict[str, int]:
    return {"length": len(await request.body())}


@app.get("/raise")
async def fail() -> None:
    raise AppError("fastapi endpoint failed")


@app.get("/nothing", status_code=204)
async def nothing() -> Response:
    return Response(status_code=204)


@app.websocket("/ws")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    text = await websocket.receive_text()
    await websocket.send_text(text.upper())
    data = await websocket.receive_bytes()
    await websocket.send_bytes(data * 2)
    await websocket.close(code=4003)
