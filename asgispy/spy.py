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
from time import perf_counter
from typing import TYPE_CHECKING, Any

from asgispy.capture.history import History
from asgispy.capture.layers import current_record  # loaded with the record in any case
from asgispy.capture.origin import Origin, fork_generation, new_origin
from asgispy.capture.record import ConnectionRecord
from asgispy.capture.skip import Skip
from asgispy.capture.snapshot import snapshot_copy
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
    ) -> None:
        if max_body < 0 or max_events < 0:
            raise ValueError("max_body and max_events must not be negative")
        self.app = app
        self.enabled = enabled
        self.max_body = max_body
        self.max_events = max_events
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
        from asgispy.wire.address import ENV_ADDRESS, parse_address
        from asgispy.wire.producer import Producer

        stream = address is not False
        if address is None or address is True:
            env = os.environ.get(ENV_ADDRESS, "").strip()
            if env.lower() in ("off", "none", "false", "0"):
                stream = False
            else:
                try:
                    address = parse_address(env) if env else None
                except ValueError as exc:
                    logger.error("asgispy: ignoring %s (%s); not streaming", ENV_ADDRESS, exc)
                    stream = False
        if not stream:
            return None  # the history compacts what ends on its own: no thread at all
        return Producer(
            address if stream and address is not False and address is not True else None,
            origin=lambda: self.origin,
            history=self.history,
            cpu_share=cpu_share,
            stream=stream,
            control=self._control.handle if self._control is not None else None,
        )

    def _renew_origin(self) -> Origin:
        # After a fork the child starts a fresh tag, numbering and history of its own.
        self._generation = fork_generation()
        self._seq = itertools.count(1)
        self._origin = new_origin(self.name)
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
            if self._generation != fork_generation():
                self._renew_origin()
            record = ConnectionRecord(self._origin.tag, next(self._seq), scope, self.max_events)
            history = self.history
            if history.max_connections:
                history.add(record)
            producer = self._producer
            if producer is not None:
                if producer._streaming:
                    producer.opened(record)
                elif producer._thread is None:
                    producer.start()
            events = record._events
            assert events is not None
            stack = self._stack
            token = None
            app = self.app
            if stack is not None:
                infos = stack.place()
                record.layer_infos = infos
                record.layers = [None] * len(infos)
                token = current_record.set(record)
            elif self.interception is not None:
                if self.interception.active:
                    token = current_record.set(record)  # asgispy's interception journals on it
                else:
                    app = self._app  # nothing to apply: not even a pass through Intercept
            inside = self._inside
            if inside is not None:
                record.inside_options = inside  # what the hooks of asgispy.inside record for it
                if token is None:
                    token = current_record.set(record)
        except Exception:
            logger.exception("asgispy could not start recording a connection; the app runs unrecorded")
            await self._app(scope, receive, send)
            return
        max_body = self.max_body
        max_events = self.max_events
        t0 = record.t0
        append = events.append

        # Messages only go into the record (a live producer follows the records it was told of),
        # as copies of what could change later. Most messages are a bytes body within bounds and
        # nothing else to copy: a few tests settle that, the rest go the general way. One clock
        # read more per message times the call itself: how long the app waited in receive()
        # (a slow client, or an app that asked early) or was held in send() (backpressure).
        async def spy_receive() -> Message:
            called = perf_counter()
            message = await receive()
            try:
                if len(events) < max_events:
                    now = perf_counter()
                    copy = dict(message)
                    body = copy.get("body")
                    if body.__class__ is bytes and len(body) <= max_body and "headers" not in copy:
                        append([RECEIVE, now - t0, copy, None, now - called])
                    else:
                        copy, cut, _ = snapshot_copy(copy, max_body)
                        append([RECEIVE, now - t0, copy, cut, now - called])
                else:
                    record.dropped_events += 1
            except Exception as exc:
                record.note(f"could not record a received message: {exc!r}")
            return message

        async def spy_send(message: Message) -> None:
            event: list[Any] | None = None
            called = 0.0
            try:
                if len(events) < max_events:
                    copy = dict(message)
                    body = copy.get("body")
                    called = perf_counter()
                    if body.__class__ is bytes and len(body) <= max_body and "headers" not in copy:
                        event = [SEND, called - t0, copy, None, None]
                    else:
                        copy, cut, _ = snapshot_copy(copy, max_body)
                        event = [SEND, called - t0, copy, cut, None]
                    append(event)
                else:
                    record.dropped_events += 1
            except Exception as exc:
                record.note(f"could not record a sent message: {exc!r}")
            try:
                await send(message)
            finally:
                if event is not None:
                    event[4] = perf_counter() - called

        try:
            await app(scope, spy_receive, spy_send)
        except asyncio.CancelledError:
            self._close(record, scope, None, cancelled=True)
            raise
        except BaseException as exc:
            self._close(record, scope, exc, cancelled=False)
            raise
        else:
            self._close(record, scope, None, cancelled=False)
        finally:
            if token is not None:
                current_record.reset(token)

    def _close(
        self, record: ConnectionRecord, scope: Scope, exc: BaseException | None, cancelled: bool
    ) -> None:
        try:
            record.finish(scope, exc, cancelled)
            producer = self._producer
            if producer is not None and producer._streaming:
                self.history.ended(record)  # the sender packs it for the wire and the history
                if record.type == "lifespan":
                    producer.closed(record)
            elif record.history_slot:
                self.history.keep_now(record)
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
