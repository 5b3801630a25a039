"""A FastAPI app with the usual middleware stack, for layers mode: CORS, GZip, TrustedHost, a
``BaseHTTPMiddleware``, a raw ASGI middleware that rewrites headers, one that holds a stream back,
an exception handler, and a WebSocket route."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class ServerHeader:
    """Raw ASGI: renames the app's ``x-powered-by`` to ``server`` and drops ``x-internal``."""

    def __init__(self, app: ASGIApp, name: str = "layered") -> None:
        self.app = app
        self.name = name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def rewrite(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k not in (b"x-powered-by", b"x-internal")
                ]
                headers.append((b"server", self.name.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, rewrite)


class HoldStream:
    """Raw ASGI: buffers the body of /held and sends it in one message at the end."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/held":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def hold(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                assert start is not None
                await send(start)
                await send({"type": "http.response.body", "body": b"".join(chunks)})

        await self.app(scope, receive, hold)


class Timing(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers["x-timing"] = "1"
        return response


class Teapot(Exception):
    pass


def build() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, Any]:
        return {"id": item_id, "name": "kettle", "notes": "x" * 600}

    @app.get("/plain")
    async def plain() -> JSONResponse:
        return JSONResponse({"ok": True}, headers={"x-powered-by": "fastapi", "x-internal": "1"})

    @app.get("/held")
    async def held() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for n in range(8):
                yield b"chunk %d\n" % n
                await asyncio.sleep(0.05)

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("the kettle is on fire")

    @app.get("/teapot")
    async def teapot() -> None:
        raise Teapot("no coffee")

    @app.exception_handler(Teapot)
    async def on_teapot(request: Request, exc: Teapot) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=418)

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        text = await websocket.receive_text()
        await websocket.send_text(f"echo {text}")
        await websocket.close()

    # Outermost last: CORS, then GZip, TrustedHost, Timing, ServerHeader, HoldStream inward.
    app.add_middleware(HoldStream)
    app.add_middleware(ServerHeader, name="layered/1")
    app.add_middleware(Timing)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost"])
    app.add_middleware(GZipMiddleware, minimum_size=100)
    app.add_middleware(CORSMiddleware, allow_origins=["http://example.org"])
    return app
