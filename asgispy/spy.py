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
from collections.abc import Awaitable, Iterable
from contextvars import Token
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING, Any

from asgispy.capture import origin as origin_module
from asgispy.capture.history import History
from asgispy.capture.layers import current_record  # loaded with the record in any case
from asgispy.capture.origin import Origin, fork_generation, new_origin
from asgispy.capture.record import ConnectionRecord
from asgispy.capture.skip import Skip
from asgispy.capture.snapshot import STRIDE
from asgispy.codec.redact import DEFAULT_REDACT, Redactor
from asgispy.codec.sessionfile import session_document, write_session
from asgispy.types import RECEIVE, SEND, ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from asgispy.capture.inside import InsideOptions
    from asgispy.capture.layers import Stack
    from asgispy.inside.hooks import Installed
    from asgispy.intercept.control import Control
    from asgispy.intercept.engine import Intercept
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
        compact: hold each ended connection as one buffer while nobody streams (about 870
            bytes for a small request instead of some 1.3 to 3 KiB of objects), at the price
            of one ``marshal`` call per connection on the request path. Off by default: under
            a server, keeping the objects measured cheaper. While streaming, the history keeps
            what the sender packed for the wire either way.
        max_body: bytes kept of each message's body (longer ones are cut, their size noted).
        max_events: messages kept per connection; later ones are counted, not kept.
        redact: header names (``*`` globs allowed) whose values are masked in every export.
        skip: connections to leave unrecorded: path globs (``"/health"``, ``"/metrics*"``) and
            scope types (``"lifespan"``, ``"websocket"``); they cost one check each.
        layers: record every depth of the middleware stack too, not only the top (see
            docs/dashboard.md, "Layers"): the dashboard then shows what each middleware did.
            The taps are placed at the first connection; off by default.
        enabled: False makes Spy a plain pass-through.
        name: how this app is named to viewers (default: the app's module and name).
        address: where to stream events live: ``unix:/path`` or ``tcp://127.0.0.1:PORT``
            (default: ``$ASGISPY_ADDRESS``, else the per-user socket ``asgispy attach``
            listens on); False streams nothing (``ASGISPY_ADDRESS=off`` does the same).
        stream_cpu: the most of one CPU the background sender may use (default a tenth).
            It encodes under the GIL, taking that time from the app; past the share it
            rests and events are dropped and counted, rather than the app slowed.
        addons: hooks that change traffic (addon files' paths, modules or objects; see
            docs/intercept.md). Each change is recorded on the connection.
        rules: mocks, delays, throttles and faults without code: a TOML file's path, or a
            list of rule tables as the file would hold them (docs/intercept.md).
        intercept: let a viewer hold connections at breakpoints, edit them and answer them
            (``asgispy run`` turns it on; off here, so a dashboard attached to production
            traffic can never hold it). With no breakpoint set it costs one check per connection.
        inside: record what the app does while serving each connection: its outgoing HTTP
            calls, log records and SQL statements (True, or some of ``"http"``, ``"logging"``,
            ``"sql"``; see docs/inside.md). Off by default; hooks are installed only for what
            is asked and removed by :meth:`close`.
        inside_level: the lowest log level recorded (default INFO).
        inside_sql_params: record SQL parameters too (they are user data: off by default).
        time_sends: time each ``send()`` call too: how long the server held the app there (a
            slow client's backpressure). It costs a coroutine and a clock read per message,
            more than recording the message itself, so it is off here; ``asgispy run`` turns it
            on. Every message is timed as it crosses either way, and every ``receive()`` call.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        history: int = 1000,
        history_bytes: int = 64 * MiB,
        compact: bool = False,
        max_body: int = MiB,
        max_events: int = 10_000,
        redact: Iterable[str] = DEFAULT_REDACT,
        skip: Iterable[str] = (),
        layers: bool = False,
        enabled: bool = True,
        name: str | None = None,
        address: str | Address | bool | None = None,
        stream_cpu: float = 0.1,
        addons: Iterable[Any] = (),
        rules: Any = None,
        intercept: bool = False,
        inside: bool | str | Iterable[str] = False,
        inside_level: int | str = "INFO",
        inside_sql_params: bool = False,
        time_sends: bool = False,
    ) -> None:
        if max_body < 0 or max_events < 0:
            raise ValueError("max_body and max_events must not be negative")
        self.app = app
        self.enabled = enabled
        self.max_body = max_body
        self.max_events = max_events
        #: what a record is told of max_events (None: its default, no store per connection)
        self._max_events = None if max_events == ConnectionRecord.max_events else max_events
        self.time_sends = time_sends
        self.redactor = Redactor(redact)
        self.skip = Skip(skip)
        self._skip = self.skip if self.skip else None  # read per connection: no __bool__ call
        self.history = History(history, history_bytes, self.redactor, compact)
        self._stack: Stack | None = None
        #: the app as given: what connections left unrecorded (skip, enabled=False) go to
        self._app: ASGIApp = app
        engine = None
        addons = tuple(addons)
        if addons or rules is not None or intercept:
            from asgispy.intercept.engine import Intercept

            engine = self.app = Intercept(app, addons, rules, max_body=max_body, layers=layers)
        #: the addons, rules and breakpoints applied (None without any): viewers change them here
        self.interception: Intercept | None = engine
        if layers:
            from asgispy.capture.layers import Stack

            self._stack = Stack(app, max_body, above=engine)
        self.name = name or _app_name(app)
        self._generation = -1
        self._origin: Origin = self._renew_origin()
        #: the viewer's handle on the interception: only for an app that opted in
        self._control: Control | None = None
        if engine is not None and intercept:
            from asgispy.intercept.control import Control

            self._control = Control(engine, redactor=self.redactor)
        self._producer: Producer | None = self._make_producer(address, stream_cpu)
        if self._control is not None and self._producer is not None:
            self._control.report = self._producer.report
        self._inside: InsideOptions | None = None
        self._inside_hooks: Installed | None = None
        if inside:
            self._watch_inside(inside, inside_level, inside_sql_params)
        #: whether a connection needs more than its record: layers, interception or inside
        self._extras = self._stack is not None or engine is not None or self._inside is not None

    def _watch_inside(self, inside: bool | str | Iterable[str], level: int | str, params: bool) -> None:
        from asgispy.capture.inside import InsideOptions
        from asgispy.inside import parse_kinds
        from asgispy.inside.hooks import install

        kinds = parse_kinds(inside)
        number = level if isinstance(level, int) else logging.getLevelName(str(level).upper())
        if not isinstance(number, int):
            raise ValueError(f"inside_level: {level!r} is not a logging level (DEBUG, INFO, WARNING...)")
        self._inside = InsideOptions(kinds, number, self.max_body, params)
        self._inside_hooks = install(kinds, number)

    def close(self) -> None:
        """Remove the hooks ``inside`` installed (the last Spy that asked for a kind removes it)."""
        hooks, self._inside_hooks = self._inside_hooks, None
        self._inside = None
        if hooks is not None:
            hooks.remove()

    def _make_producer(self, address: str | Address | bool | None, cpu_share: float) -> Producer | None:
        from asgispy.wire.address import streamed_to
        from asgispy.wire.producer import Producer

        stream, where = streamed_to(address)
        if not stream:
            return None  # the history compacts what ends on its own: no thread at all
        return Producer(
            where,
            origin=lambda: self.origin,
            history=self.history,
            cpu_share=cpu_share,
            control=self._control.handle if self._control is not None else None,
        )

    def _renew_origin(self) -> Origin:
        # After a fork the child starts a fresh tag, numbering and history of its own.
        self._generation = fork_generation()
        self._seq = itertools.count(1)
        self._origin = new_origin(self.name)
        self._tag = self._origin.tag
        if hasattr(self, "history"):
            self.history.clear()
        producer = getattr(self, "_producer", None)
        if producer is not None:
            producer.start()  # after a fork: a thread and state of this process's own
        return self._origin

    @property
    def origin(self) -> Origin:
        if self._generation != fork_generation():
            self._renew_origin()
        return self._origin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        skip = self._skip
        if not self.enabled or (skip is not None and skip.matches(scope)):
            await self._app(scope, receive, send)
            return
        try:
            if self._generation != origin_module._generation:
                self._renew_origin()
            record = ConnectionRecord(self._tag, next(self._seq), scope, self._max_events)
            history = self.history
            if history.max_connections:  # History.add, inline
                record.history_slot = True
                records = history._records
                records.append(record)
                if len(records) > history._hard_limit:
                    history.evict()
            producer = self._producer
            if producer is not None:
                if producer._streaming:
                    producer.opened(record)
                elif producer._thread is None:
                    producer.start()
            app = self._app
            token = None
            if self._extras:
                app, token = self._enter(record)
            flat = record._flat
            assert flat is not None
        except Exception:
            logger.exception("asgispy could not start recording a connection; the app runs unrecorded")
            await self._app(scope, receive, send)
            return
        max_body = self.max_body
        t0 = record.t0
        extend = flat.extend
        bound = self.max_events * STRIDE  # the flat list's length when max_events are kept
        general = record.general
        payload = 0  # bytes of the payloads kept: what the history counts

        # Messages only go into the record, as copies of what could change later (a live
        # producer follows the records it was told of). Most messages are a bytes body within
        # bounds and nothing else to copy: three tests settle that (a body message carries no
        # headers), the rest go the general way. receive() is timed from the call (how long the
        # app waited: a slow client, or an app that asked early); send() as it is handed over,
        # and timed to its end only with time_sends (see Spy).
        async def spy_receive() -> Message:
            nonlocal payload
            called = perf_counter()
            message = await receive()
            try:
                now = perf_counter()
                copy = message.copy()  # type: ignore[attr-defined]  # a dict, as ASGI has it
                body = copy.get("body")
                if type(body) is bytes and (n := len(body)) <= max_body and len(flat) < bound:
                    payload += n
                    extend((RECEIVE, now - t0, copy, None, now - called))
                elif body is None and type(text := copy.get("text")) is str and (n := len(text)) <= max_body:
                    # A WebSocket's text (at most one of text and bytes is set, and nothing to copy).
                    if copy.get("bytes") is None and len(flat) < bound:
                        payload += n
                        extend((RECEIVE, now - t0, copy, None, now - called))
                    else:
                        payload += general(RECEIVE, message, now, now - called, max_body)
                else:
                    payload += general(RECEIVE, message, now, now - called, max_body)
            except Exception:  # not a dict: the general way says what it could not record
                payload += general(RECEIVE, message, perf_counter(), None, max_body)
            return message

        def spy_send(message: Message) -> Awaitable[None]:
            # A plain function handing back the server's own awaitable: no frame of ours per send.
            nonlocal payload
            try:
                copy = message.copy()  # type: ignore[attr-defined]  # a dict, as ASGI has it
                body = copy.get("body")
                if type(body) is bytes and (n := len(body)) <= max_body and len(flat) < bound:
                    payload += n
                    extend((SEND, perf_counter() - t0, copy, None, None))
                elif body is None and type(text := copy.get("text")) is str and (n := len(text)) <= max_body:
                    if copy.get("bytes") is None and len(flat) < bound:
                        payload += n
                        extend((SEND, perf_counter() - t0, copy, None, None))
                    else:
                        payload += general(SEND, message, perf_counter(), None, max_body)
                elif body is None and type(headers := copy.get("headers")) is list and len(flat) < bound:
                    # A response's start (or a WebSocket's accept): its header list is the copy to take.
                    copy["headers"] = headers.copy()
                    extend((SEND, perf_counter() - t0, copy, None, None))
                else:
                    payload += general(SEND, message, perf_counter(), None, max_body)
            except Exception:  # not a dict: the general way says what it could not record
                payload += general(SEND, message, perf_counter(), None, max_body)
            return send(message)

        if self.time_sends:
            record.times_sends = True

            async def spy_send(message: Message) -> None:  # type: ignore[misc]  # the same, timed
                nonlocal payload
                before = len(flat)
                called = perf_counter()
                payload += general(SEND, message, called, None, max_body)
                at = before + 4 if len(flat) > before else -1  # where its wait goes, if it was kept
                try:
                    await send(message)
                finally:
                    if at >= 0:
                        flat[at] = perf_counter() - called

        try:
            await app(scope, spy_receive, spy_send)
        except asyncio.CancelledError:
            self._close(record, scope, None, True, payload)
            raise
        except BaseException as exc:
            self._close(record, scope, exc, False, payload)
            raise
        else:
            self._close(record, scope, None, False, payload)
        finally:
            if token is not None:
                current_record.reset(token)

    def _enter(self, record: ConnectionRecord) -> tuple[ASGIApp, Token[Any] | None]:
        """What a connection needs beyond its record: the layers' taps, the interception (only
        when something may apply), the hooks of ``inside``. Returns the app to call and the
        context token to reset when the connection ends."""
        app = self._app
        token = None
        stack = self._stack
        if stack is not None:
            infos = stack.place()
            record.layer_infos = infos
            record.layers = [None] * len(infos)
            token = current_record.set(record)
            app = self.app
        elif self.interception is not None and self.interception.active:
            token = current_record.set(record)  # asgispy's interception journals on it
            app = self.app
        inside = self._inside
        if inside is not None:
            record.inside_options = inside  # what the hooks of asgispy.inside record for it
            if token is None:
                token = current_record.set(record)
        return app, token

    def _close(
        self, record: ConnectionRecord, scope: Scope, exc: BaseException | None, cancelled: bool, payload: int
    ) -> None:
        try:
            record.finish(scope, exc, cancelled)
            producer = self._producer
            if producer is not None and producer._streaming:
                self.history.ended(record)  # the sender packs it for the wire and the history
                if record.type == "lifespan":
                    producer.closed(record)
            elif record.history_slot:
                self.history.keep_now(record, payload)
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
