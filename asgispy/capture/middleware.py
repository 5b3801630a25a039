"""``Spy``: the pure ASGI middleware that records every connection the app handles.

The app and the server see the very objects they would without Spy: the same scope, the
same messages, the same exceptions. Spy records copies, and any failure of its own is
noted in the record, never raised into the app.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asgispy.capture.history import History
from asgispy.capture.origin import Origin, fork_generation, new_origin
from asgispy.capture.record import ConnectionRecord
from asgispy.capture.redact import DEFAULT_REDACT, Redactor
from asgispy.capture.sessionfile import session_document, write_session
from asgispy.types import RECEIVE, SEND, ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from asgispy.wire.address import Address
    from asgispy.wire.producer import Producer

__all__ = ["Spy"]

logger = logging.getLogger("asgispy")

MiB = 1024 * 1024


def _app_name(app: Any) -> str:
    target = getattr(app, "__func__", app)
    module = getattr(target, "__module__", None) or type(target).__module__
    name = getattr(target, "__qualname__", None) or type(target).__qualname__
    return f"{module}:{name}"


class Spy:
    """Record the scope and every message of every connection of ``app``.

    Options:
        history: how many recent connections to keep in memory (0 keeps none).
        history_bytes: the most bytes of recorded data to keep in memory.
        max_body: bytes kept of each message's body (longer ones are cut, their size noted).
        max_events: messages kept per connection; later ones are counted, not kept.
        redact: header names (``*`` globs allowed) whose values are masked in every export.
        enabled: False makes Spy a plain pass-through.
        name: how this app is named to viewers (default: the app's module and name).
        address: where to stream events live: ``unix:/path`` or ``tcp://127.0.0.1:PORT``
            (default: ``$ASGISPY_ADDRESS``, else the per-user socket ``asgispy attach``
            listens on); False streams nothing (``ASGISPY_ADDRESS=off`` does the same).
        stream_cpu: the most of one CPU the background sender may use (default a tenth).
            It encodes under the GIL, taking that time from the app; past the share it
            rests and events are dropped and counted, rather than the app slowed.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        history: int = 1000,
        history_bytes: int = 64 * MiB,
        max_body: int = MiB,
        max_events: int = 10_000,
        redact: Iterable[str] = DEFAULT_REDACT,
        enabled: bool = True,
        name: str | None = None,
        address: str | Address | bool | None = None,
        stream_cpu: float = 0.1,
    ) -> None:
        if max_body < 0 or max_events < 0:
            raise ValueError("max_body and max_events must not be negative")
        self.app = app
        self.enabled = enabled
        self.max_body = max_body
        self.max_events = max_events
        self.redactor = Redactor(redact)
        self.history = History(history, history_bytes)
        self.name = name or _app_name(app)
        self._generation = -1
        self._origin: Origin = self._renew_origin()
        self._producer: Producer | None = self._make_producer(address, stream_cpu)

    def _make_producer(self, address: str | Address | bool | None, cpu_share: float) -> Producer | None:
        from asgispy.wire.address import ENV_ADDRESS, parse_address
        from asgispy.wire.producer import Producer

        if address is False:
            return None
        if address is None or address is True:
            env = os.environ.get(ENV_ADDRESS, "").strip()
            if env.lower() in ("off", "none", "false", "0"):
                return None
            try:
                address = parse_address(env) if env else None
            except ValueError as exc:
                logger.error("asgispy: ignoring %s (%s); not streaming", ENV_ADDRESS, exc)
                return None
        return Producer(
            address,
            origin=lambda: self.origin,
            history=self.history.records,
            redactor=self.redactor,
            cpu_share=cpu_share,
        )

    def _renew_origin(self) -> Origin:
        # After a fork the child starts a fresh tag, numbering and history of its own.
        self._generation = fork_generation()
        self._seq = itertools.count(1)
        self._origin = new_origin(self.name)
        if hasattr(self, "history"):
            self.history.clear()
        return self._origin

    @property
    def origin(self) -> Origin:
        if self._generation != fork_generation():
            self._renew_origin()
        return self._origin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.enabled:
            await self.app(scope, receive, send)
            return
        try:
            if self._generation != fork_generation():
                self._renew_origin()
            record = ConnectionRecord(self._origin.tag, next(self._seq), scope, self.max_events)
            self.history.add(record)
            producer = self._producer
            if producer is not None:
                producer.opened(record)
        except Exception:
            logger.exception("asgispy could not start recording a connection; the app runs unrecorded")
            await self.app(scope, receive, send)
            return
        max_body = self.max_body

        # Messages only go into the record: a live producer finds them there (it follows the
        # connections it was told of as they began), so streaming costs nothing per message.
        async def spy_receive() -> Message:
            message = await receive()
            try:
                record.add(RECEIVE, message, max_body)
            except Exception as exc:
                record.note(f"could not record a received message: {exc!r}")
            return message

        async def spy_send(message: Message) -> None:
            try:
                record.add(SEND, message, max_body)
            except Exception as exc:
                record.note(f"could not record a sent message: {exc!r}")
            await send(message)

        try:
            await self.app(scope, spy_receive, spy_send)
        except asyncio.CancelledError:
            self._close(record, scope, None, cancelled=True)
            raise
        except BaseException as exc:
            self._close(record, scope, exc, cancelled=False)
            raise
        else:
            self._close(record, scope, None, cancelled=False)

    def _close(
        self, record: ConnectionRecord, scope: Scope, exc: BaseException | None, cancelled: bool
    ) -> None:
        try:
            record.finish(scope, exc, cancelled)
            self.history.trim()
            producer = self._producer
            if producer is not None and producer._streaming:
                producer.closed(record)
        except Exception:
            logger.exception("asgispy could not finish recording connection %s", record.id)

    # Reading what was recorded -------------------------------------------------------------

    @property
    def records(self) -> list[ConnectionRecord]:
        """The connections kept in memory, oldest first (the live records, not copies)."""
        return self.history.records()

    def document(self) -> dict[str, Any]:
        """The kept connections as a session document (redacted), ready to serialise."""
        origin = self.origin
        connections = [record.document(self.redactor, origin.tag) for record in self.records]
        return session_document(connections, {origin.tag: origin.document()})

    def export(self, path: str | os.PathLike[str]) -> Path:
        """Write the kept connections to ``path`` as a JSON session file, atomically."""
        return write_session(path, self.document())
