"""One producer's link to the collector: its hello, then its frames into the store.

A link is an asyncio protocol of its own, apart from the server that listens (the collector),
so that what goes wrong with one producer (garbage, an oversized frame, an unknown protocol
version, a wrong token) is told to it and ends its link alone. :class:`Links` is what the
links share: who is connected now, under which tag, and whether none is.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Iterator
from typing import Any

from asgispy.model.connection import Connection
from asgispy.model.event import Event
from asgispy.model.session import ProducerInfo
from asgispy.store.store import Store
from asgispy.version import __version__
from asgispy.wire.handshake import (
    control_frame,
    error_frame,
    is_v1,
    parse_hello,
    v1_error_line,
    welcome_frame,
)
from asgispy.wire.protocol import (
    CLOSE,
    CONTROL,
    DROPPED,
    EVENTS,
    OPEN,
    FrameReader,
    ProtocolError,
    decode_payload,
    encode_frame,
)
from asgispy.wire.readers import (
    decode_events_frame,
    decode_open_frame,
    is_events_frame,
    is_open_frame,
    parse_connection,
    parse_end,
    parse_events,
)

__all__ = ["HELLO_TIMEOUT", "Link", "Links"]

logger = logging.getLogger("asgispy.collector")

#: How long a new connection may take to say hello before it is dropped.
HELLO_TIMEOUT = 10.0


class Links:
    """The producers linked to one collector: every link, and the one each producer tag is
    welcomed on (a producer that reconnects replaces its stale link)."""

    def __init__(self) -> None:
        self._all: set[Link] = set()
        self.active: dict[str, Link] = {}
        self._idle: asyncio.Event | None = None

    def __len__(self) -> int:
        return len(self._all)

    def __iter__(self) -> Iterator[Link]:
        return iter(self._all)

    def start(self) -> None:
        """In the collector's event loop, as it starts: from now on, being empty can be waited for."""
        self._idle = asyncio.Event()
        self._idle.set()

    async def wait_empty(self, timeout: float) -> bool:
        """Wait until no link is left; False if some still is after ``timeout``."""
        if self._idle is None or self._idle.is_set():
            return True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def linked(self, link: Link) -> None:
        self._all.add(link)
        if self._idle is not None:
            self._idle.clear()

    def unlinked(self, link: Link) -> None:
        self._all.discard(link)
        if not self._all and self._idle is not None:
            self._idle.set()

    def welcomed(self, link: Link, tag: str) -> None:
        previous = self.active.get(tag)
        self.active[tag] = link
        if previous is not None and previous is not link:
            previous.close()  # the same producer reconnected; its old link is stale

    def lost(self, link: Link, tag: str) -> bool:
        """Forget ``link`` as ``tag``'s; False if a newer link has taken its place already."""
        if self.active.get(tag) is link:
            del self.active[tag]
            return True
        return False


class Link(asyncio.Protocol):
    """One producer's connection: its hello, then its frames into the store."""

    def __init__(self, links: Links, store: Store, max_frame: int, token: str | None) -> None:
        self.links = links
        self.store = store
        self.token = token
        self.reader = FrameReader(max_frame)
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.tag: str | None = None
        self.prefix = ""
        self.info: ProducerInfo | None = None
        self.closed = False
        #: the producer said it may be controlled (Spy(app, intercept=True))
        self.controllable = False
        self._hello_timer: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return f"<producer {self.name}>"

    @property
    def name(self) -> str:
        """How log lines name this producer: what it said it is, or where it came from."""
        info = self.info
        if info is None:
            return f"from {self.peer}"
        return f"{info.tag} ({info.app}, pid {info.pid} on {info.host})"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "unix socket"
        self.links.linked(self)
        loop = asyncio.get_running_loop()
        self._hello_timer = loop.call_later(HELLO_TIMEOUT, self._no_hello)

    def _no_hello(self) -> None:
        if self.tag is None:
            self.fail(f"no hello within {HELLO_TIMEOUT:g} s")

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        if self.tag is None and not self.reader.buffered and is_v1(data):
            self._refuse_v1()
            return
        try:
            reader = self.reader
            for payload in reader.feed(data):
                if self.closed:
                    return
                if self.tag is not None and is_events_frame(payload):
                    try:
                        seq, index, events = decode_events_frame(payload)
                    except ProtocolError as exc:
                        # Not the form Spy sends: the general path reads the other forms the
                        # protocol allows (events without their wait); else the error stands.
                        self._general(payload, exc)
                        continue
                    built = [Event.from_message(d, t, m, c, raw, w) for d, t, m, raw, c, w in events]
                    self.store.events(f"{self.prefix}{seq}", built, index, [e[2] for e in events])
                elif self.tag is not None and is_open_frame(payload):
                    try:
                        seq, kind, started, scope, events, end = decode_open_frame(payload)
                    except ProtocolError as exc:
                        self._general(payload, exc)
                        continue
                    conn = Connection.from_values(
                        f"{self.prefix}{seq}",
                        kind,
                        scope,
                        (),
                        None,
                        seq=seq,
                        producer=self.tag,
                        started=started,
                    )
                    for d, t, m, raw, c, w in events:
                        conn.add(Event.from_message(d, t, m, c, raw, w))
                    if end is not None:
                        conn.finish(end)
                    self.store.add(conn, [e[2] for e in events])
                else:
                    self._frame(decode_payload(payload))
            if reader.error is not None:
                raise reader.error
        except ProtocolError as exc:
            self.fail(str(exc))
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            self.fail(f"malformed frame ({type(exc).__name__}: {exc})")
        except Exception as exc:
            logger.debug("collector: error applying a frame", exc_info=True)
            self.fail(f"could not apply a frame: {exc!r}")

    def _refuse_v1(self) -> None:
        """A producer of an older asgispy (newline-delimited JSON): tell it, in its own words."""

        reason = (
            f"this collector (asgispy {__version__}) speaks wire protocol 2 and the app's asgispy speaks "
            "protocol 1: use the same asgispy on both sides"
        )
        logger.warning("collector: producer %s: %s; disconnecting it", self.name, reason)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(v1_error_line(reason))
        self.close()

    def _general(self, payload: bytes, error: ProtocolError) -> None:
        """A frame the typed reader refused, read the general way; ``error`` if that fails too."""
        try:
            frame = decode_payload(payload)
            self._frame(frame)
        except ProtocolError:
            raise error from None

    def _frame(self, frame: Any) -> None:
        if self.tag is None:
            self._hello(frame)
            return
        if type(frame) is not list or not frame or type(frame[0]) is not int:
            raise ProtocolError("malformed frame (not an array that starts with its kind)")
        kind = frame[0]
        prefix = self.prefix
        if kind == EVENTS:
            if len(frame) != 4 or type(frame[1]) is not int or type(frame[2]) is not int or frame[2] < 0:
                raise ProtocolError("malformed events frame")
            wire = parse_events(frame[3])
            events = [Event.from_message(d, t, m, c, None, w) for d, t, m, c, w in wire]
            self.store.events(f"{prefix}{frame[1]}", events, frame[2], [e[2] for e in wire])
        elif kind == OPEN:
            if len(frame) != 2:
                raise ProtocolError("malformed open frame")
            seq, type_, started, scope, wire_events, end = parse_connection(frame[1])
            conn = Connection.from_values(
                f"{prefix}{seq}", type_, scope, wire_events, end, seq=seq, producer=self.tag, started=started
            )
            self.store.add(conn, [e[2] for e in wire_events])
        elif kind == CLOSE:
            if len(frame) != 3 or type(frame[1]) is not int:
                raise ProtocolError("malformed close frame")
            end = parse_end(frame[2])
            if end is None:
                raise ProtocolError("a close frame without an end")
            self.store.close(f"{prefix}{frame[1]}", end)
        elif kind == CONTROL:
            if len(frame) != 2 or not isinstance(frame[1], dict) or not self.controllable:
                raise ProtocolError("malformed control frame, or from a producer that said it takes none")
            self.store.report_control(self.tag, frame[1])
        elif kind == DROPPED:
            if len(frame) != 2 or type(frame[1]) is not int:
                raise ProtocolError(f"dropped frame with a total that is not an integer: {frame[1:]!r}")
            self.store.report_dropped(self.tag, frame[1])
        else:
            raise ProtocolError(f"unknown frame kind {kind!r}")

    def _hello(self, frame: Any) -> None:
        hello = parse_hello(frame)
        token = self.token
        if token is not None and (hello.token is None or not hmac.compare_digest(hello.token, token)):
            raise ProtocolError("wrong or missing token")
        if self._hello_timer is not None:
            self._hello_timer.cancel()
        self.tag = hello.producer
        self.prefix = f"{hello.producer}-"
        self.info = ProducerInfo(hello.producer, hello.host, hello.pid, hello.app, hello.started)
        self.controllable = hello.control
        self.links.welcomed(self, self.tag)
        self.store.attach(self.info, hello.control)
        self._send(welcome_frame())
        logger.info("producer %s connected", self.name)

    def control(self, request: dict[str, Any]) -> bool:
        """Send a viewer's request to this producer; False if it takes none or is gone."""
        if not self.controllable or self.closed:
            return False
        self._send(control_frame(request))
        return True

    def _send(self, frame: dict[str, Any]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode_frame(frame))

    def fail(self, reason: str) -> None:
        """Tell the producer why, log it, and disconnect it; nothing else is affected."""
        if self.closed:
            return
        logger.warning("collector: producer %s: %s; disconnecting it", self.name, reason)
        self._send(error_frame(reason))
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._hello_timer is not None:
            self._hello_timer.cancel()
        self.links.unlinked(self)
        tag = self.tag
        if tag is not None and self.links.lost(self, tag):
            logger.info("producer %s disconnected", self.name)
            self.store.detach(tag)
