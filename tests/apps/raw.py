"""Raw ASGI apps: the seed article's hello app, and one that exercises the protocol's corners.

No framework in between, so the messages the tests compare are exactly the ones written
here, including those a framework would never send (trailers, pathsend, a denial response).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import parse_qs

Scope = MutableMapping[str, Any]

#: A body that is not UTF-8 and not Latin-1 text either: every byte value once.
BINARY = bytes(range(256))
LATIN1_VALUE = "café olé".encode("latin-1")


async def seed_app(scope: Scope, receive: Any, send: Any) -> None:
    """The app from the seed article: answer every HTTP request with a small JSON greeting.

    Like the article's, it waits for one request message and ignores every other scope type
    (so a server's lifespan probe finds it returning without a word).
    """
    if scope["type"] == "http":
        await receive()
        body = json.dumps({"message": "Hello, ASGI!"}).encode("utf-8")
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


class AppError(Exception):
    """What ``/raise`` raises, chained to a cause, so tests can check the chain survives."""


async def read_body(receive: Any) -> bytes:
    """The whole request body, as an app that wants all of it reads it."""
    return (await _read_body(receive))[0]


async def _read_body(receive: Any) -> tuple[bytes, int]:
    """The whole request body, and how many ``http.request`` messages carried it."""
    chunks = []
    count = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        count += 1
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks), count


async def _respond(
    send: Any, status: int, body: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    head = [(b"content-type", b"application/octet-stream"), *(headers or [])]
    if status not in (204, 304):
        head.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": head})
    if status in (204, 304):
        await send({"type": "http.response.body", "body": b""})
    else:
        await send({"type": "http.response.body", "body": body})


async def _lifespan(scope: Scope, receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if isinstance(scope.get("state"), dict):
                scope["state"]["started"] = True
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _stream_until_disconnect(receive: Any, send: Any, interval: float) -> None:
    """Stream chunks until the client goes away (noticed through ``http.disconnect``)."""
    gone = asyncio.Event()

    async def watch() -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                gone.set()
                return

    watcher = asyncio.ensure_future(watch())
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    try:
        for i in range(2000):
            if gone.is_set():
                return
            await send({"type": "http.response.body", "body": b"tick %d\n" % i, "more_body": True})
            await asyncio.sleep(interval)
        await send({"type": "http.response.body", "body": b""})
    finally:
        watcher.cancel()


async def _websocket(scope: Scope, receive: Any, send: Any) -> None:
    path = scope["path"]
    message = await receive()
    assert message["type"] == "websocket.connect"
    if path == "/ws-deny" and "websocket.http.response" in (scope.get("extensions") or {}):
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 401,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b"no entry"})
        return
    if path in ("/ws-reject", "/ws-deny"):  # a server without the denial extension gets a plain close
        await send({"type": "websocket.close", "code": 1008, "reason": ""})
        return
    await send({"type": "websocket.accept", "subprotocol": None, "headers": [(b"x-ws", b"yes")]})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        text, data = message.get("text"), message.get("bytes")
        if text == "bye":
            await send({"type": "websocket.close", "code": 4001, "reason": "done here"})
            return
        if text is not None:
            await send({"type": "websocket.send", "text": text.upper()})
        if data is not None:
            await send({"type": "websocket.send", "bytes": data[::-1]})


async def edge_app(scope: Scope, receive: Any, send: Any) -> None:
    """One route per corner of the protocol (see the ``if`` chain below)."""
    kind = scope["type"]
    if kind == "lifespan":
        await _lifespan(scope, receive, send)
        return
    if kind == "websocket":
        await _websocket(scope, receive, send)
        return
    if kind != "http":
        raise ValueError(f"unsupported scope type {kind!r}")

    path, method = scope["path"], scope["method"]
    if path == "/echo":
        body, count = await _read_body(receive)
        query = parse_qs(scope["query_string"].decode("ascii"))
        answer = {
            "method": method,
            "path": path,
            "query": query,
            "length": len(body),
            "messages": count,
            "sha256": hashlib.sha256(body).hexdigest(),
        }
        await _respond(send, 200, json.dumps(answer, ensure_ascii=False).encode(), [(b"x-echo", b"1")])
    elif path == "/stream":
        await _read_body(receive)
        n = int(parse_qs(scope["query_string"].decode()).get("n", ["50"])[0])
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        for i in range(n):
            await send({"type": "http.response.body", "body": b"chunk %03d\n" % i, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    elif path == "/forever":
        await _stream_until_disconnect(receive, send, 0.005)
    elif path == "/binary":
        await _read_body(receive)
        await _respond(send, 200, BINARY)
    elif path == "/latin1":
        await _read_body(receive)
        await _respond(send, 200, b"ok", [(b"x-latin1", LATIN1_VALUE)])
    elif path == "/secret":
        await _read_body(receive)
        await _respond(
            send,
            200,
            b"ok",
            [(b"Set-Cookie", b"session=S3CR3T-SET-COOKIE; HttpOnly"), (b"x-api-key", b"K3Y-OUT")],
        )
    elif path == "/nothing":
        await _read_body(receive)
        await _respond(send, 204)
    elif path == "/raise":
        await _read_body(receive)
        nothing: dict[str, int] = {}
        try:
            nothing["missing"]
        except KeyError as cause:
            raise AppError("the endpoint failed") from cause
    elif path == "/trailers":
        await _read_body(receive)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
                "trailers": True,
            }
        )
        await send({"type": "http.response.body", "body": b"with trailers", "more_body": False})
        await send(
            {
                "type": "http.response.trailers",
                "headers": [(b"x-checksum", b"abc123")],
                "more_trailers": False,
            }
        )
    elif path == "/pathsend":
        await _read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": "/etc/hostname"})
    else:
        await _read_body(receive)
        await _respond(send, 404, b"not found: " + scope["raw_path"])
