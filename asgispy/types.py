"""The ASGI types, in one place, so every layer speaks of them the same way."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Literal

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

Direction = Literal["receive", "send"]
RECEIVE: Direction = "receive"
SEND: Direction = "send"

#: The message fields that carry a payload (bytes or text), which are cut at ``max_body``.
PAYLOAD_FIELDS = ("body", "bytes", "text")

#: How a connection ended. "open" while the app is still running it; "cut off" when the
#: process that recorded it went away before it ended.
Outcome = Literal["open", "completed", "exception", "cancelled", "cut off"]
