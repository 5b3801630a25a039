"""Resending to an app in this process (``asgispy open FILE --app main:app``): a saved session's
requests go again, edited or not, to the app imported here, and what it does is recorded by a
Spy of its own, so the answer can join the session as a new connection marked as resent.

The app's lifespan starts with the first request sent (opening a file costs nothing until then)
and stops with :meth:`InProcess.close`; its ``state`` reaches each request, as under a server.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from asgispy.model.session import Session
from asgispy.replay.lifespan import Lifespan
from asgispy.replay.resend import TIMEOUT, Resent, resend
from asgispy.spy import Spy
from asgispy.store.load import session_from_document
from asgispy.types import Receive, Scope, Send

__all__ = ["InProcess"]


class InProcess:
    """``app`` behind a Spy of its own, inside its lifespan once something was sent to it."""

    def __init__(self, app: Any, name: str = "in-process") -> None:
        self.spy = Spy(app, address=False, history=64, max_body=64 * 1024 * 1024, name=name)
        self._lifespan: Lifespan | None = None
        self.startup_error: str | None = None

    async def _started(self) -> Lifespan | None:
        if self._lifespan is None and self.startup_error is None:
            lifespan = Lifespan(self.spy)
            try:
                await lifespan.__aenter__()
            except Exception as exc:  # the app's startup failed or raised: said, not raised
                lifespan.cancel()
                self.startup_error = f"the app did not start: {exc}"
                return None
            self._lifespan = lifespan
        return self._lifespan

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        lifespan = self._lifespan
        if lifespan is not None and lifespan.supported:
            scope = {**scope, "state": dict(lifespan.state)}  # as servers do: a copy per request
        await self.spy(scope, receive, send)

    async def send(
        self,
        doc: dict[str, Any],
        resent_from: str,
        env: Mapping[str, str] | None = None,
        timeout: float = TIMEOUT,
    ) -> tuple[Resent, Session | None]:
        """Send ``doc``; the answer, and the connections it made as a session (None: nothing)."""
        if await self._started() is None:
            return Resent(None, [], self.startup_error), None
        seen = {record.id for record in self.spy.records}
        result = await resend(doc, resent_from, app=self._app, env=env, timeout=timeout)
        document = self.spy.document()
        fresh = [
            c for c in document["connections"] if c.get("id") not in seen and c.get("type") != "lifespan"
        ]
        if not fresh:
            return result, None
        return result, session_from_document({**document, "connections": fresh})

    async def close(self) -> None:
        """Run the app's shutdown, if its startup ran."""
        lifespan, self._lifespan = self._lifespan, None
        if lifespan is not None:
            try:
                await lifespan.__aexit__(None, None, None)
            except Exception:  # a shutdown that fails or hangs must not keep the dashboard open
                lifespan.cancel()
