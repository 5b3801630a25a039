"""One intercepted WebSocket connection: a delay before the app sees it, a close with a code of
the rule's choosing once the app accepts, messages dropped by text, and each message through the
addons' ``websocket_message`` hooks, either way."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from asgispy.intercept.addons import Addon, call_hook
from asgispy.intercept.exchange import Exchange, WebSocketMessage
from asgispy.intercept.http import request_of
from asgispy.intercept.journal import Journal
from asgispy.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from asgispy.intercept.rules import Plan

__all__ = ["serve_websocket"]


def _contains(message: Message, needle: str) -> bool:
    text = message.get("text")
    if isinstance(text, str):
        return needle in text
    data = message.get("bytes")
    return isinstance(data, (bytes, bytearray)) and needle.encode("utf-8") in data


class Conversation:
    """The rules and hooks that apply to one WebSocket connection's messages."""

    def __init__(self, plan: Plan | None, addons: list[Addon], scope: Scope, journal: Journal) -> None:
        self.journal = journal
        self.drops = plan.drops if plan is not None else []
        self.close = plan.close if plan is not None else None
        self.hooks = [a for a in addons if a.hook("websocket_message")]
        self.exchange = Exchange(request_of(scope), scope_type="websocket")
        self.closed_code: int | None = None

    async def filtered(self, message: Message, from_client: bool) -> Message | None:
        """The message to pass on (maybe edited), or None to drop it."""
        for rule in self.drops:
            if _contains(message, rule.value):
                side = "client" if from_client else "app"
                self.journal.add(rule.label, f"dropped a message from the {side}")
                return None
        for addon in self.hooks:
            fn = addon.hook("websocket_message")
            assert fn is not None
            text, data = message.get("text"), message.get("bytes")
            item = WebSocketMessage(
                from_client,
                text if isinstance(text, str) else None,
                bytes(data) if isinstance(data, (bytes, bytearray)) and text is None else None,
            )
            try:
                result = await call_hook(fn, self.exchange, item)
            except Exception as exc:
                self.journal.failed(addon.name, "websocket_message", exc)
                continue
            edited = _message_of(message, result)
            if edited is None:
                self.journal.add(
                    addon.name, f"dropped a message from the {'client' if from_client else 'app'}"
                )
                return None
            if edited.get("text") != message.get("text") or edited.get("bytes") != message.get("bytes"):
                self.journal.add(
                    addon.name, f"edited a message from the {'client' if from_client else 'app'}"
                )
            message = edited
        return message


def _message_of(original: Message, result: Any) -> Message | None:
    if result is None:
        return None
    if isinstance(result, WebSocketMessage):
        result = result.content
    copy = dict(original)
    if isinstance(result, str):
        copy["text"], copy["bytes"] = result, None
    elif isinstance(result, (bytes, bytearray, memoryview)):
        copy["bytes"], copy["text"] = bytes(result), None
    else:
        raise TypeError(
            f"websocket_message returns a message, text, bytes or None, not {type(result).__name__}"
        )
    return copy


async def serve_websocket(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, plan: Plan | None, addons: list[Addon]
) -> None:
    journal = Journal()
    if plan is not None and plan.delay:
        for rule in plan.applied:
            if rule.action == "delay":
                journal.add(rule.label, rule.describe())
        await asyncio.sleep(plan.delay)
    talk = Conversation(plan, addons, scope, journal)

    async def inner_receive() -> Message:
        while True:
            if talk.closed_code is not None:
                return {"type": "websocket.disconnect", "code": talk.closed_code}
            message = await receive()
            if message.get("type") != "websocket.receive":
                return message
            try:
                passed = await talk.filtered(message, True)
            except Exception as exc:
                journal.failed("asgispy", "websocket_message", exc)
                return message
            if passed is not None:
                return passed

    async def inner_send(message: Message) -> None:
        if talk.closed_code is not None:
            return  # the socket is closed: what the app sends goes nowhere
        kind = message.get("type")
        if kind == "websocket.send":
            try:
                passed = await talk.filtered(message, False)
            except Exception as exc:
                journal.failed("asgispy", "websocket_message", exc)
                passed = message
            if passed is not None:
                await send(passed)
            return
        await send(message)
        if kind == "websocket.accept" and talk.close is not None:
            code = int(talk.close.value)
            journal.add(talk.close.label, f"closed the socket with {code}")
            talk.closed_code = code
            await send({"type": "websocket.close", "code": code})

    await app(scope, inner_receive, inner_send)
