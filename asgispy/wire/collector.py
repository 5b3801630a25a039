"""The collector: an asyncio server that takes producers' frames and feeds the store.

Many producers (every worker of every app using ``Spy``) connect at once, on a Unix socket
and/or loopback TCP. Each connection is handled on its own: a producer that sends garbage,
an oversized frame or an unknown protocol version is told why, logged, and disconnected,
while the collector and every other producer go on. A producer that goes away leaves its
unfinished connections in the store, marked cut off.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hmac
import logging
import os
import socket
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from asgispy.model.connection import Connection
from asgispy.model.event import Event
from asgispy.model.session import ProducerInfo
from asgispy.store.store import Store
from asgispy.version import __version__
from asgispy.wire.address import (
    Address,
    AddressError,
    default_address,
    ensure_private_directory,
    parse_address,
)
from asgispy.wire.handshake import error_frame, is_v1, parse_hello, v1_error_line, welcome_frame
from asgispy.wire.protocol import (
    CLOSE,
    DROPPED,
    EVENTS,
    MAX_FRAME,
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

__all__ = ["AddressTaken", "Collector", "CollectorError"]

logger = logging.getLogger("asgispy.collector")

#: How long a new connection may take to say hello before it is dropped.
HELLO_TIMEOUT = 10.0


class CollectorError(RuntimeError):
    """The collector cannot listen where it was asked to (taken, unsafe, or not allowed)."""


class AddressTaken(CollectorError):
    """Another listener, most often another asgispy viewer, has the address: it may free it."""


class Collector:
    """Listen on ``addresses`` and feed what producers send into ``store``.

    ``token``: when set, every producer must present it in its hello. Listening on TCP
    beyond loopback needs ``allow_remote=True`` and a token, so that recorded traffic is
    never open to anyone who can reach the port.
    """

    def __init__(
        self,
        store: Store,
        addresses: Iterable[str | Address] = (),
        *,
        token: str | None = None,
        allow_remote: bool = False,
        max_frame: int = MAX_FRAME,
    ) -> None:
        self.store = store
        self.requested = [parse_address(a) for a in addresses] or [default_address()]
        self.token = token or None
        self.allow_remote = allow_remote
        self.max_frame = max_frame
        self.addresses: list[Address] = []
        self._servers: list[asyncio.AbstractServer] = []
        self._sockets: list[tuple[str, int]] = []  # unix socket files we made: (path, inode)
        self._links: set[_Link] = set()
        self._active: dict[str, _Link] = {}
        self._idle: asyncio.Event | None = None
        for address in self.requested:
            self._check(address)

    def _check(self, address: Address) -> None:
        if address.scheme != "tcp" or address.is_loopback:
            return
        if not self.allow_remote:
            raise CollectorError(
                f"refusing to listen on {address}: it is not a loopback address, so anyone who can "
                "reach it would see the recorded traffic (allow remote producers explicitly, with a token: "
                "--allow-remote --token SECRET)"
            )
        if self.token is None:
            raise CollectorError(f"listening on {address}, beyond loopback, requires a token")

    # Lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind every address; raises CollectorError (after closing what was bound) on failure."""
        self._idle = asyncio.Event()
        self._idle.set()
        try:
            for address in self.requested:
                if address.scheme == "unix":
                    await self._start_unix(address)
                else:
                    await self._start_tcp(address)
        except BaseException:
            await self.stop()
            raise

    async def _start_unix(self, address: Address) -> None:
        loop = asyncio.get_running_loop()
        path = Path(address.path)
        try:
            if address == default_address() or not path.parent.exists():
                ensure_private_directory(path.parent)
            _remove_stale_socket(path)
            # Bind under a temporary name, restrict it, then move it into place: the socket
            # is never reachable at its real path with looser permissions than 0600.
            temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.bind(str(temporary))
                os.chmod(temporary, 0o600)
                sock.listen(128)
                os.replace(temporary, path)
            except BaseException:
                sock.close()
                with contextlib.suppress(FileNotFoundError):
                    temporary.unlink()
                raise
        except (OSError, AddressError) as exc:
            raise CollectorError(f"cannot listen on {address}: {exc}") from exc
        server = await loop.create_unix_server(self._make_link, sock=sock)
        self._servers.append(server)
        self._sockets.append((str(path), os.stat(path).st_ino))
        self.addresses.append(address)
        logger.debug("collector listening on %s", address)

    async def _start_tcp(self, address: Address) -> None:
        loop = asyncio.get_running_loop()
        try:
            server = await loop.create_server(self._make_link, address.host, address.port)
        except OSError as exc:
            kind = AddressTaken if exc.errno == errno.EADDRINUSE else CollectorError
            raise kind(f"cannot listen on {address}: {exc.strerror or exc}") from exc
        self._servers.append(server)
        port = server.sockets[0].getsockname()[1] if server.sockets else address.port
        bound = address.with_port(port)
        self.addresses.append(bound)
        logger.debug("collector listening on %s", bound)

    async def stop(self) -> None:
        """Stop listening and disconnect every producer (their open connections become cut off)."""
        for server in self._servers:
            server.close()
        for link in list(self._links):
            link.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        self._servers.clear()
        for path, inode in self._sockets:
            # Only our own socket file: another collector may have taken the path since.
            with contextlib.suppress(OSError):
                if os.stat(path).st_ino == inode:
                    os.unlink(path)
        self._sockets.clear()
        self.addresses = []
        # Let the transports report their loss, so that what was still open is marked cut off.
        await self.wait_disconnected(1.0)

    async def __aenter__(self) -> Collector:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # Producers ------------------------------------------------------------------------------

    @property
    def producers_connected(self) -> int:
        """How many producers are connected now (said hello and have not gone away)."""
        return len(self._active)

    async def wait_disconnected(self, timeout: float) -> bool:
        """Wait until no producer is connected (say, after the app's server exited)."""
        if self._idle is None or self._idle.is_set():
            return True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def _make_link(self) -> _Link:
        return _Link(self)

    def _linked(self, link: _Link) -> None:
        self._links.add(link)
        if self._idle is not None:
            self._idle.clear()

    def _unlinked(self, link: _Link) -> None:
        self._links.discard(link)
        if not self._links and self._idle is not None:
            self._idle.set()


class _Link(asyncio.Protocol):
    """One producer's connection: its hello, then its frames into the store."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self.store = collector.store
        self.reader = FrameReader(collector.max_frame)
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.tag: str | None = None
        self.prefix = ""
        self.info: ProducerInfo | None = None
        self.closed = False
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
        self.collector._linked(self)
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
        elif kind == DROPPED:
            if len(frame) != 2 or type(frame[1]) is not int:
                raise ProtocolError(f"dropped frame with a total that is not an integer: {frame[1:]!r}")
            self.store.report_dropped(self.tag, frame[1])
        else:
            raise ProtocolError(f"unknown frame kind {kind!r}")

    def _hello(self, frame: Any) -> None:
        hello = parse_hello(frame)
        token = self.collector.token
        if token is not None and (hello.token is None or not hmac.compare_digest(hello.token, token)):
            raise ProtocolError("wrong or missing token")
        if self._hello_timer is not None:
            self._hello_timer.cancel()
        self.tag = hello.producer
        self.prefix = f"{hello.producer}-"
        self.info = ProducerInfo(hello.producer, hello.host, hello.pid, hello.app, hello.started)
        previous = self.collector._active.get(self.tag)
        self.collector._active[self.tag] = self
        if previous is not None and previous is not self:
            previous.close()  # the same producer reconnected; its old link is stale
        self.store.attach(self.info)
        self._send(welcome_frame())
        logger.info("producer %s connected", self.name)

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
        self.collector._unlinked(self)
        tag = self.tag
        if tag is not None and self.collector._active.get(tag) is self:
            del self.collector._active[tag]
            logger.info("producer %s disconnected", self.name)
            self.store.detach(tag)


def _remove_stale_socket(path: Path) -> None:
    """Remove a socket file left by a collector that died; refuse to take a live one's place."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise CollectorError(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    except OSError as exc:
        raise CollectorError(f"cannot check {path}: {exc}") from exc
    finally:
        probe.close()
    raise AddressTaken(f"another asgispy viewer already listens on unix:{path}")
