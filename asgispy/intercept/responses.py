"""What stands between the app's ``send`` and the client on an intercepted HTTP response:
the addons' response hooks, a cut-off (``fault = "abort"``) and a throttle.

Each is a ``send`` callable wrapping the next one. None of them raises into the app: a hook's
error is journaled and the response goes on as the app sent it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from asgispy.intercept.addons import Addon, call_hook
from asgispy.intercept.exchange import Exchange, Response, as_bytes
from asgispy.intercept.headers import Headers
from asgispy.intercept.journal import Journal
from asgispy.types import Message, Send

__all__ = ["MAX_BUFFER", "STREAM_TYPES", "Abort", "ResponseHooks", "Throttle", "with_length"]

#: the largest response body held whole for a response hook; longer ones are streamed to it
MAX_BUFFER = 16 * 1024 * 1024
#: content types that are streams by nature: never held, even for their first chunk
STREAM_TYPES = ("text/event-stream", "application/x-ndjson", "application/jsonl", "application/ndjson")


def with_length(headers: Headers, size: int) -> list[tuple[bytes, bytes]]:
    """The headers with a Content-Length of ``size`` (and no Transfer-Encoding)."""
    out = headers.copy()
    if "transfer-encoding" in out:
        del out["transfer-encoding"]
    out["content-length"] = str(size)
    return out.raw()


def _length(raw: Any) -> int | None:
    for name, value in raw or ():
        if bytes(name).lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _content_type(raw: Any) -> str:
    for name, value in raw or ():
        if bytes(name).lower() == b"content-type":
            return bytes(value).decode("latin-1").split(";")[0].strip().lower()
    return ""


class ResponseHooks:
    """Runs the addons' ``response`` hooks on a whole response, or on a streamed one's start
    and its chunks (``response_chunk``), and sends what they leave."""

    def __init__(self, exchange: Exchange, addons: list[Addon], journal: Journal, send: Send) -> None:
        self.exchange = exchange
        self.addons = addons
        self.journal = journal
        self.send_on = send
        self.start: Message | None = None
        self.mode = ""  # "", "buffer" or "stream"
        self.chunks: list[bytes] = []
        self.size = 0
        self.done = False

    async def send(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "http.response.start" and self.start is None and not self.done:
            self.start = message
            headers = message.get("headers") or []
            length = _length(headers)
            if length is not None and length <= MAX_BUFFER:
                self.mode = "buffer"
            elif length is not None or _content_type(headers) in STREAM_TYPES or message.get("trailers"):
                await self._begin_stream()
            return  # otherwise held until the first body chunk says which it is
        if kind != "http.response.body" or self.start is None or self.done:
            await self.send_on(message)
            return
        body = message.get("body", b"")
        body = bytes(body) if isinstance(body, (bytes, bytearray, memoryview)) else b""
        more = bool(message.get("more_body", False))
        if not self.mode:
            if more:
                await self._begin_stream()
            else:
                self.mode = "buffer"
        if self.mode == "buffer":
            self.chunks.append(body)
            self.size += len(body)
            if more and self.size > MAX_BUFFER:
                held, self.chunks = self.chunks, []
                await self._begin_stream()
                for chunk in held:
                    await self._chunk(chunk, True)
            elif not more:
                await self._finish()
            return
        await self._chunk(body, more)

    async def _run(self, hook: str, *args: Any) -> list[tuple[Addon, Any]]:
        results = []
        for addon in self.addons:
            fn = addon.hook(hook)
            if fn is None:
                continue
            response = self.exchange.response
            before = response.copy() if response is not None else None
            try:
                results.append((addon, await call_hook(fn, self.exchange, *args)))
            except Exception as exc:
                self.exchange.response = before
                self.journal.failed(addon.name, hook, exc)
        return results

    def _response(self, streaming: bool) -> Response:
        start = self.start or {}
        body = None if streaming else b"".join(self.chunks)
        response = Response(
            int(start.get("status", 200)),
            Headers.from_raw(start.get("headers") or []),
            body,
            streaming=streaming,
        )
        self.exchange.response = response
        return response

    async def _finish(self) -> None:
        self.done = True
        original = self._response(False)
        kept = original.copy()
        await self._run("response")
        response = self.exchange.response or kept
        start = dict(self.start or {})
        body = response.body if response.body is not None else b""
        changed = _describe(kept, response)
        if changed:
            self.journal.add(", ".join(a.name for a in self.addons), "response: " + changed)
        start["status"] = response.status
        if body != kept.body:
            start["headers"] = with_length(response.headers, len(body))
        elif response.headers.changed:
            start["headers"] = response.headers.raw()
        await self.send_on(start)
        await self.send_on({"type": "http.response.body", "body": body, "more_body": False})

    async def _begin_stream(self) -> None:
        self.mode = "stream"
        original = self._response(True)
        kept = original.copy()
        await self._run("response")
        response = self.exchange.response or kept
        changed = _describe(kept, response)
        if changed:
            self.journal.add(", ".join(a.name for a in self.addons), "response start: " + changed)
        start = dict(self.start or {})
        start["status"] = response.status
        if response.headers.changed:
            start["headers"] = response.headers.raw()
        await self.send_on(start)

    async def _chunk(self, body: bytes, more: bool) -> None:
        chunk: bytes | None = body
        for addon in self.addons:
            fn = addon.hook("response_chunk")
            if fn is None or chunk is None:
                continue
            try:
                result = await call_hook(fn, self.exchange, chunk)
                chunk = None if result is None else as_bytes(result)
            except Exception as exc:
                self.journal.failed(addon.name, "response_chunk", exc)
        if chunk is None:
            self.journal.add(", ".join(a.name for a in self.addons), f"dropped a {len(body)}-byte chunk")
            if more:
                return
            chunk = b""
        if not more:
            self.done = True
        await self.send_on({"type": "http.response.body", "body": chunk, "more_body": more})

    async def flush(self) -> None:
        """The app returned with a response still held: send what it gave."""
        if self.start is not None and not self.done and self.mode != "stream":
            held, self.chunks = self.chunks, []
            await self._begin_stream()
            for chunk in held:
                await self.send_on({"type": "http.response.body", "body": chunk, "more_body": True})


def _describe(before: Response, after: Response) -> str:
    parts = []
    if after.status != before.status:
        parts.append(f"status {before.status} → {after.status}")
    if after.headers.fields() != before.headers.fields():
        parts.append("headers")
    if after.body != before.body:
        parts.append(f"body {len(before.body or b'')} → {len(after.body or b'')} bytes")
    return ", ".join(parts)


class Abort:
    """``fault = "abort"``: the response stops mid-body; what the app sends later goes nowhere.

    The app then returns with its response incomplete, and the server closes the connection
    (uvicorn logs "ASGI callable returned without completing response"): the client sees a
    connection dropped in the middle of a body, as when a server or a network dies.
    """

    def __init__(self, after: int | None, by: str, journal: Journal, send: Send) -> None:
        self.after = after
        self.by = by
        self.journal = journal
        self.send_on = send
        self.sent = 0
        self.cut = False

    async def send(self, message: Message) -> None:
        if self.cut:
            return
        if message.get("type") != "http.response.body":
            await self.send_on(message)
            return
        body = bytes(message.get("body", b"") or b"")
        limit = self.after if self.after is not None else self.sent + max(1, len(body) // 2)
        room = limit - self.sent
        more = bool(message.get("more_body", False))
        if room > len(body) and more:
            self.sent += len(body)
            await self.send_on(message)
            return
        part = body[: max(0, room)]
        self.cut = True
        self.journal.add(self.by, f"aborted the response after {self.sent + len(part)} body bytes")
        if part:
            await self.send_on({"type": "http.response.body", "body": part, "more_body": True})


class Throttle:
    """``throttle = N``: the response body reaches the client at N bytes per second, in pieces
    of a tenth of a second's worth, each after its share of time."""

    def __init__(self, rate: int, send: Send) -> None:
        self.rate = max(1, rate)
        self.piece = max(1, rate // 10)
        self.send_on = send

    async def send(self, message: Message) -> None:
        body = message.get("body") if message.get("type") == "http.response.body" else None
        if not body:
            await self.send_on(message)
            return
        data = bytes(body)
        more = bool(message.get("more_body", False))
        for start in range(0, len(data), self.piece):
            piece = data[start : start + self.piece]
            await asyncio.sleep(len(piece) / self.rate)
            last = start + self.piece >= len(data)
            await self.send_on({"type": "http.response.body", "body": piece, "more_body": more or not last})
