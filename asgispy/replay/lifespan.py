"""An app's lifespan, run by asgispy itself: replays and in-process resends send requests to an
app no server runs, so its startup (a database pool, a client it keeps in ``state``) runs here.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

__all__ = ["Lifespan"]


class Lifespan:
    """The app's lifespan, when it speaks the protocol (as uvicorn's ``auto`` decides)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.supported = False
        self.state: dict[str, Any] = {}

    async def __aenter__(self) -> Lifespan:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.state}
        self.task = asyncio.ensure_future(self._run(scope))
        await self.inbox.put({"type": "lifespan.startup"})
        message = await self.outbox.get()
        if message.get("type") == "lifespan.startup.failed":
            raise RuntimeError(f"the app's startup failed: {message.get('message', '')}")
        self.supported = message.get("type") == "lifespan.startup.complete"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.supported:
            await self.inbox.put({"type": "lifespan.shutdown"})
            await asyncio.wait_for(self.outbox.get(), 10)
        self.cancel()

    def cancel(self) -> None:
        """Stop the app's lifespan task where it is."""
        if self.task is not None:
            self.task.cancel()

    async def _run(self, scope: dict[str, Any]) -> None:
        # An app without lifespan raises or returns: it is served without one.
        with contextlib.suppress(Exception):
            await self.app(scope, self.inbox.get, self.outbox.put)
        await self.outbox.put({"type": "lifespan.unsupported"})
