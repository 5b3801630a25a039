"""The collector: an asyncio server that takes producers' frames and feeds the store.

Many producers (every worker of every app using ``Spy``) connect at once, on a Unix socket
and/or loopback TCP. Each connection is handled on its own: a producer that sends garbage,
an oversized frame or an unknown protocol version is told why, logged, and disconnected,
while the collector and every other producer go on. A producer that goes away leaves its
unfinished connections in the store, marked cut off. This module is the server: where it
listens, and safely; each producer's link is in :mod:`asgispy.wire.link`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from asgispy.store.store import Store
from asgispy.wire.address import (
    Address,
    AddressError,
    default_address,
    ensure_private_directory,
    parse_address,
)
from asgispy.wire.link import Link, Links
from asgispy.wire.protocol import MAX_FRAME

__all__ = ["AddressTaken", "Collector", "CollectorError"]

logger = logging.getLogger("asgispy.collector")


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
        self._links = Links()
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
        self._links.start()
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
        return len(self._links.active)

    async def wait_disconnected(self, timeout: float) -> bool:
        """Wait until no producer is connected (say, after the app's server exited)."""
        return await self._links.wait_empty(timeout)

    def control(self, producer: str, request: dict[str, Any]) -> bool:
        """Send a viewer's request to a producer that may be controlled (from the collector's
        loop); False if it is not connected or takes none."""
        link = self._links.active.get(producer)
        return link is not None and link.control(request)

    def controllable(self) -> list[str]:
        """The producers connected now that may be controlled."""
        return [tag for tag, link in self._links.active.items() if link.controllable]

    def _make_link(self) -> Link:
        return Link(self._links, self.store, self.max_frame, self.token)


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
