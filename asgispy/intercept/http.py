"""One intercepted HTTP request: the rules' plan, the addons' request hooks, then the app (or
an answer without it), with the response side wired as the plan and the hooks need.

The scope the server gave stays as it was (Spy records it as the client's side); when a hook
changes the request, the app gets a copy with the changes, and the body as one message.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING
from urllib.parse import quote

from asgispy.intercept.addons import Addon, call_hook
from asgispy.intercept.exchange import Exchange, Request
from asgispy.intercept.headers import Headers
from asgispy.intercept.journal import Journal
from asgispy.intercept.responses import Abort, ResponseHooks, Throttle, with_length
from asgispy.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from asgispy.intercept.rules import Plan

__all__ = ["DISCONNECTED_STATUS", "serve_http"]

#: What the client gets under ``fault = "disconnect"``: the app was told the client had gone,
#: so nobody answered; 499 is the status servers log for a client that closed first.
DISCONNECTED_STATUS = 499


def request_of(scope: Scope) -> Request:
    query = scope.get("query_string", b"")
    return Request(
        str(scope.get("method", "GET")),
        str(scope.get("path", "/")),
        bytes(query).decode("latin-1") if isinstance(query, (bytes, bytearray)) else str(query or ""),
        Headers.from_raw(scope.get("headers") or []),
        scheme=str(scope.get("scheme", "http")),
        http_version=str(scope.get("http_version", "1.1")),
    )


async def read_body(receive: Receive) -> tuple[list[Message], bytes]:
    """Every ``http.request`` message up to the last (or a disconnect), and the body they carry."""
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message.get("type") != "http.request" or not message.get("more_body", False):
            break
    body = b"".join(bytes(m.get("body", b"") or b"") for m in messages if m.get("type") == "http.request")
    return messages, body


def _changes(before: Request, after: Request) -> list[str]:
    parts = []
    if after.method != before.method:
        parts.append(f"method {before.method} → {after.method}")
    if after.path != before.path:
        parts.append(f"path {before.path} → {after.path}")
    if after.query != before.query:
        parts.append("query")
    if after.headers.fields() != before.headers.fields():
        parts.append("headers")
    if after.body_read and after.body != before._body:
        parts.append(f"body {len(before._body or b'')} → {len(after.body)} bytes")
    return parts


def edited_scope(scope: Scope, before: Request, after: Request) -> Scope:
    """The scope the app sees: the server's own when nothing changed, else a copy with the edits."""
    body_changed = after.body_read and after.body != before._body
    if not _changes(before, after):
        return scope
    new = dict(scope)
    if after.method != before.method:
        new["method"] = after.method.upper()
    if after.path != before.path:
        new["path"] = after.path
        new["raw_path"] = quote(after.path, safe="/:@!$&'()*+,;=-._~%").encode("ascii")
    if after.query != before.query:
        new["query_string"] = after.query.encode("utf-8")
    if body_changed:
        new["headers"] = with_length(after.headers, len(after.body))
    elif after.headers.fields() != before.headers.fields():
        new["headers"] = after.headers.raw()
    return new


def replaying(pending: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that gives ``pending`` first, then the client's own."""

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


async def answer(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _gone(scope: Scope, app: ASGIApp, journal: Journal, by: str, send: Send) -> None:
    """``fault = "disconnect"``: the app is told the client left; the client gets 499 after."""
    journal.add(by, "told the app the client disconnected")

    async def disconnected() -> Message:
        return {"type": "http.disconnect"}

    async def nowhere(message: Message) -> None:
        return None

    await app(scope, disconnected, nowhere)
    await answer(
        send,
        DISCONNECTED_STATUS,
        [(b"content-type", b"text/plain; charset=utf-8")],
        b"asgispy: fault = disconnect: the app was told the client had gone\n",
    )


async def _request_hooks(exchange: Exchange, addons: list[Addon], journal: Journal) -> None:
    for addon in addons:
        fn = addon.hook("request")
        if fn is None:
            continue
        before = exchange.request.copy()
        try:
            await call_hook(fn, exchange)
        except Exception as exc:
            exchange.request, exchange.response, exchange.answered = before, None, False
            journal.failed(addon.name, "request", exc)
            continue
        changes = _changes(before, exchange.request)
        if changes:
            journal.add(addon.name, "request: " + ", ".join(changes))
        if exchange.answered and exchange.response is not None:
            journal.add(addon.name, f"answered {exchange.response.status} without the app")
            return


async def serve_http(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, plan: Plan | None, addons: list[Addon]
) -> None:
    journal = Journal()
    if plan is not None:
        for rule in plan.applied:
            if rule.action in ("delay", "throttle"):
                journal.add(rule.label, rule.describe())
        if plan.delay:
            await asyncio.sleep(plan.delay)
        if plan.respond is not None:
            value = plan.respond.value
            journal.add(plan.respond.label, f"{plan.respond.describe()} without the app")
            await answer(
                send,
                value["status"],
                [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in value["headers"]],
                value["body"],
            )
            return
        if plan.fault is not None and plan.fault.value == "disconnect":
            await _gone(scope, app, journal, plan.fault.label, send)
            return
    request_addons = [a for a in addons if a.hook("request")]
    response_addons = [a for a in addons if a.hook("response") or a.hook("response_chunk")]
    inner_scope, inner_receive, inner_send = scope, receive, send
    exchange: Exchange | None = None
    if request_addons or response_addons:
        exchange = Exchange(request_of(scope))
    if exchange is not None and request_addons:
        pending: list[Message] | None = None
        if any(a.wants_body() for a in request_addons):
            pending, body = await read_body(receive)
            exchange.request._body = body
        original = exchange.request.copy()
        await _request_hooks(exchange, request_addons, journal)
        if exchange.answered and exchange.response is not None:
            response = exchange.response
            await answer(send, response.status, response.headers.raw(), response.body or b"")
            return
        inner_scope = edited_scope(scope, original, exchange.request)
        if exchange.request.body_read and exchange.request.body != original._body:
            pending = [{"type": "http.request", "body": exchange.request.body, "more_body": False}]
        if pending is not None:
            inner_receive = replaying(pending, receive)
    if plan is not None and plan.throttle is not None:
        inner_send = Throttle(int(plan.throttle.value), inner_send).send
    if plan is not None and plan.fault is not None and plan.fault.value == "abort":
        inner_send = Abort(plan.fault.after, plan.fault.label, journal, inner_send).send
    hooks = None
    if exchange is not None and response_addons:
        hooks = ResponseHooks(exchange, response_addons, journal, inner_send)
        inner_send = hooks.send
    await app(inner_scope, inner_receive, inner_send)
    if hooks is not None:
        await hooks.flush()
