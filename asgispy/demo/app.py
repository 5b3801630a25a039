"""The demo app: one small Starlette app that produces every kind of ASGI event.

``asgispy demo`` serves it (wrapped in Spy by the runner, never here) and drives it with
:mod:`asgispy.demo.traffic`, so a newcomer sees in the first seconds a JSON API, a form
upload, a streamed response, server-sent events, a WebSocket chat, an endpoint that fails,
a redirect, a binary body, HEAD and 204 answers, lifespan, and secrets that get redacted.

It doubles as documentation: each handler shows one kind of traffic, nothing more.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import hashlib
import json
import logging
import struct
import time
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypedDict
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

__all__ = ["CHAT_CLOSE_CODE", "DEMO_TOKEN", "app", "png_bytes"]

#: The code the chat closes with once a client says "bye".
CHAT_CLOSE_CODE = 4000
#: The bearer token /api/me accepts; recorded as "[redacted]".
DEMO_TOKEN = "demo-secret-token"


class DemoState(TypedDict):
    """What the lifespan sets up and every request sees as ``request.state``."""

    items: dict[int, dict[str, Any]]
    chat: set[WebSocket]
    started: float


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[DemoState]:
    # Startup fills the store; shutdown closes whoever is still chatting.
    state: DemoState = {
        "items": {
            1: {"id": 1, "name": "teapot", "price": 18.0},
            2: {"id": 2, "name": "kettle", "price": 32.5},
            3: {"id": 3, "name": "mug", "price": 6.0},
        },
        "chat": set(),
        "started": time.time(),
    }
    yield state
    for ws in list(state["chat"]):
        await ws.close(code=1001, reason="server shutting down")
    state["items"].clear()


# JSON API ----------------------------------------------------------------------------------


async def index(request: Request) -> JSONResponse:
    return JSONResponse({"app": "asgispy demo", "routes": list(dict.fromkeys(r.path for r in routes))})


async def list_items(request: Request) -> JSONResponse:
    items = list(request.state.items.values())
    query = request.query_params.get("q", "").lower()
    if query:
        items = [item for item in items if query in item["name"]]
    limit = request.query_params.get("limit")
    if limit is not None:
        if not limit.isdigit():
            return _problem(422, "limit must be a whole number", limit=limit)
        items = items[: int(limit)]
    return JSONResponse({"items": items, "count": len(items)})


async def export_items(request: Request) -> StreamingResponse:
    """The items as JSON lines: the first at once, the rest held back (a slow query, or a
    buffering middleware) and released together. The timeline shows the gap and the burst."""
    items = list(request.state.items.values())

    async def lines() -> AsyncIterator[bytes]:
        yield json.dumps({"export": "items", "count": len(items)}).encode() + b"\n"
        await asyncio.sleep(0.6)
        for item in items:
            yield json.dumps(item).encode() + b"\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")


async def import_items(request: Request) -> JSONResponse:
    """Reads JSON lines as they arrive: a client that sends them slowly keeps the app waiting in
    receive(), which the recording shows chunk by chunk."""
    count = 0
    pending = b""
    async for chunk in request.stream():
        pending += chunk
        *lines, pending = pending.split(b"\n")
        count += sum(1 for line in lines if line.strip())
    count += 1 if pending.strip() else 0
    return JSONResponse({"imported": count}, status_code=202)


async def get_item(request: Request) -> JSONResponse:
    item_id: int = request.path_params["item_id"]
    item = request.state.items.get(item_id)
    if item is None:
        return _problem(404, f"no item {item_id}")
    return JSONResponse(item)


async def create_item(request: Request) -> JSONResponse:
    try:
        data = await request.json()
    except ValueError:
        return _problem(422, "the body is not JSON")
    if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not data["name"]:
        return _problem(422, "an item needs a non-empty 'name'", got=data)
    items = request.state.items
    item = {"id": max(items, default=0) + 1, "name": data["name"], "price": float(data.get("price", 0))}
    items[item["id"]] = item
    return JSONResponse(item, status_code=201, headers={"Location": f"/api/items/{item['id']}"})


async def delete_item(request: Request) -> Response:
    request.state.items.pop(request.path_params["item_id"], None)
    return Response(status_code=204)


async def me(request: Request) -> JSONResponse:
    # The Authorization and Cookie headers reach the app intact; only recordings mask them.
    if request.headers.get("authorization") != f"Bearer {DEMO_TOKEN}":
        return _problem(401, "send 'Authorization: Bearer <token>'")
    visits = int(request.cookies.get("visits", "0")) + 1
    response = JSONResponse({"user": "demo", "visits": visits})
    response.set_cookie("visits", str(visits), httponly=True, samesite="lax")
    return response


# What the app does inside a request: an outgoing call and its logs -----------------------------

#: the demo's own logger, at INFO so that ``asgispy demo`` (which records inside) shows its records
log = logging.getLogger("demo.shop")
log.setLevel(logging.INFO)


async def _carrier(scope: Any, receive: Any, send: Any) -> None:
    """A slow shipping carrier, reached in-process (no network): busy every third quote."""
    await asyncio.sleep(0.3)
    busy = b"busy" in scope.get("query_string", b"")
    body = b'{"error": "try later"}' if busy else b'{"days": 2, "price": 4.9}'
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 503 if busy else 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def quote(request: Request) -> JSONResponse:
    import httpx

    item = request.query_params.get("item", "1")
    log.info("quoting shipping for item %s", item)
    transport = httpx.ASGITransport(app=_carrier)
    async with httpx.AsyncClient(transport=transport, base_url="http://carrier.example") as client:
        answer = await client.get("/quote", params={"item": item, **dict(request.query_params)})
    if answer.status_code != 200:
        log.warning("carrier answered %d for item %s", answer.status_code, item)
        return _problem(502, "the carrier is busy", carrier=answer.status_code)
    return JSONResponse({"item": item, **answer.json()})


def _problem(status: int, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": detail, **extra}, status_code=status)


# Forms -------------------------------------------------------------------------------------


async def upload(request: Request) -> JSONResponse:
    """A multipart form with a file; parsed with the standard library to need nothing extra."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        return _problem(415, "send multipart/form-data")
    body = await request.body()
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True)
        if not isinstance(name, str) or not isinstance(data, bytes):
            continue
        filename = part.get_filename()
        if filename is None:
            fields[name] = data.decode("utf-8", "replace")
        else:
            fields[name] = {
                "filename": filename,
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
    return JSONResponse({"fields": fields}, status_code=201)


async def feedback(request: Request) -> JSONResponse:
    """An urlencoded form, as a browser's plain <form method=post> sends it."""
    fields = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
    if not fields.get("message"):
        return _problem(422, "feedback needs a 'message'", got=fields)
    return JSONResponse({"thanks": fields.get("name", "anonymous"), "length": len(fields["message"])})


# Streaming ---------------------------------------------------------------------------------


async def stream(request: Request) -> StreamingResponse:
    """A body sent in many chunks; a client that leaves early shows up as http.disconnect."""
    count = min(int(request.query_params.get("chunks", "8")), 200)

    async def lines() -> AsyncIterator[str]:
        for i in range(1, count + 1):
            yield f"chunk {i} of {count}\n"
            await asyncio.sleep(0.02)

    return StreamingResponse(lines(), media_type="text/plain")


async def events(request: Request) -> StreamingResponse:
    """A short, finite server-sent event stream."""

    async def ticks() -> AsyncIterator[str]:
        yield "retry: 1000\n\n"
        for i in range(1, 6):
            await asyncio.sleep(0.03)
            yield f"id: {i}\nevent: tick\ndata: {json.dumps({'n': i, 'at': round(time.time(), 3)})}\n\n"
        yield "event: done\ndata: bye\n\n"

    return StreamingResponse(ticks(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


# Odds and ends -----------------------------------------------------------------------------


async def boom(request: Request) -> Response:
    """Fails on purpose: the server answers 500 and the recording keeps the traceback."""
    order = {"id": request.query_params.get("order", "42")}
    raise RuntimeError(f"payment service unreachable for order {order['id']}")


async def old_items(request: Request) -> RedirectResponse:
    return RedirectResponse("/api/items", status_code=307)


async def logo(request: Request) -> Response:
    return Response(png_bytes(), media_type="image/png")


async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def png_bytes(size: int = 16) -> bytes:
    """A real ``size`` by ``size`` PNG (an orange square): binary bytes that are not text."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB
    rows = b"".join(b"\x00" + b"\xff\x80\x00" * size for _ in range(size))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


# WebSocket chat ----------------------------------------------------------------------------


async def chat(websocket: WebSocket) -> None:
    """Text is broadcast to everyone as JSON; bytes are echoed back; "bye" ends the chat."""
    name = websocket.query_params.get("name", "guest")
    members: set[WebSocket] = websocket.state.chat
    await websocket.accept()
    members.add(websocket)
    try:
        await websocket.send_text(json.dumps({"from": "server", "text": f"welcome, {name}"}))
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                await websocket.send_bytes(message["bytes"])
                continue
            text = message.get("text") or ""
            if text == "bye":
                members.discard(websocket)
                await websocket.send_text(json.dumps({"from": "server", "text": f"goodbye, {name}"}))
                await websocket.close(code=CHAT_CLOSE_CODE, reason="bye")
                return
            line = json.dumps({"from": name, "text": text})
            for member in list(members):
                try:
                    await member.send_text(line)
                except (WebSocketDisconnect, RuntimeError, OSError):
                    members.discard(member)
    except WebSocketDisconnect:
        pass
    finally:
        members.discard(websocket)


routes: list[Route | WebSocketRoute] = [
    Route("/", index),
    Route("/health", health),
    Route("/api/items", list_items, methods=["GET"]),
    Route("/api/items", create_item, methods=["POST"]),
    Route("/api/items/export", export_items, methods=["GET"]),
    Route("/api/items/import", import_items, methods=["POST"]),
    Route("/api/items/{item_id:int}", get_item, methods=["GET"]),
    Route("/api/items/{item_id:int}", delete_item, methods=["DELETE"]),
    Route("/api/me", me),
    Route("/api/quote", quote),
    Route("/upload", upload, methods=["POST"]),
    Route("/feedback", feedback, methods=["POST"]),
    Route("/stream", stream),
    Route("/events", events),
    Route("/boom", boom),
    Route("/old-items", old_items),
    Route("/logo.png", logo),
    WebSocketRoute("/ws/chat", chat),
]

#: The demo ASGI app, bare: whoever serves it wraps it in ``Spy``.
app = Starlette(routes=routes, lifespan=lifespan)
