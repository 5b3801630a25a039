"""A FastAPI app to record and replay: JSON with a field that changes on every run, text,
binary, a streamed body, an endpoint behind a secret header, and a WebSocket echo.
``build_changed`` is the same app with one endpoint changed."""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI, Header, HTTPException, Request, WebSocket
from fastapi.responses import PlainTextResponse, Response

TOKEN = "Bearer replay-secret"


def build(price: float = 3.5) -> FastAPI:
    app = FastAPI()

    @app.get("/items")
    async def items() -> dict[str, Any]:
        now = time.time()
        return {"items": [{"id": 1, "name": "kettle", "price": price, "created_at": now}], "count": 1}

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, Any]:
        return {"id": item_id, "name": "kettle"}

    @app.post("/echo")
    async def echo(request: Request) -> Response:
        return Response(await request.body(), media_type="application/octet-stream")

    @app.get("/hello")
    async def hello() -> PlainTextResponse:
        return PlainTextResponse("hello\nworld\n")

    @app.get("/me")
    async def me(authorization: str = Header("")) -> dict[str, str]:
        if authorization != TOKEN:
            raise HTTPException(401, "who are you?")
        return {"name": "ada"}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        while True:
            text = await websocket.receive_text()
            if text == "bye":
                await websocket.close(code=1000)
                return
            await websocket.send_text(f"echo {text}")

    return app


def build_changed() -> FastAPI:
    """The same app with the price of /items changed."""
    return build(price=4.0)
