"""The producer's connection to its collector: dialling, the handshake, and noticing it is gone.

This is all the sender thread knows of sockets, apart from the Producer's queues and loop:
it dials (into a directory private to this user, for the default address), says hello and
reads the answer, writes what the framing gathered, notices a collector that went away while
the app is idle, and reads why a collector dropped us. It also keeps when to dial again: soon
while nobody listens, longer while sessions keep ending at once. What it has to say goes to
the log once, not at every retry.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from asgispy.capture.origin import Origin
from asgispy.version import __version__
from asgispy.wire.address import Address, is_private_directory
from asgispy.wire.handshake import hello_frame, is_v1, v1_message
from asgispy.wire.protocol import FrameReader, ProtocolError, decode_payload, encode_frame

__all__ = ["Channel"]

logger = logging.getLogger("asgispy")

#: Seconds to wait for a collector's answer to our hello.
HANDSHAKE_TIMEOUT = 3.0
#: Retry delays when no collector listens: from the first to the longest.
MIN_BACKOFF, MAX_BACKOFF = 0.05, 1.0
#: The longest wait before reconnecting to a collector that keeps dropping us.
MAX_RETRY = 30.0
_SEND_FLAGS = getattr(socket, "MSG_NOSIGNAL", 0)


class Channel:
    """The socket to the collector at ``address`` (``sock``: None while not connected).

    ``origin`` is called as the hello is sent: who this process is now. ``checks_directory``:
    refuse a socket in a directory that is not private to this user (the default address).
    """

    def __init__(
        self,
        address: Address,
        *,
        origin: Callable[[], Origin],
        token: str | None,
        checks_directory: bool,
        control: bool = False,
    ) -> None:
        self.address = address
        self._origin = origin
        self.token = token
        self._checks_directory = checks_directory
        self._control = control
        self.sock: socket.socket | None = None
        self._backoff = MIN_BACKOFF
        self._session_started = 0.0
        self._short = 0  # sessions in a row that ended soon after they began
        self._not_before = 0.0  # no reconnecting before this (time.monotonic)
        self._said: set[str] = set()
        #: frames and bytes written to collectors, for the curious and for tests
        self.frames_sent = 0
        self.bytes_sent = 0

    def __del__(self) -> None:
        sock = self.__dict__.get("sock")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    # When to dial -------------------------------------------------------------------------------

    def due(self) -> float:
        """Seconds until the next dial may be tried (zero or less: now)."""
        return self._not_before - time.monotonic()

    def failed(self) -> float:
        """Dialling found no collector: seconds to wait, twice as long each time, up to a second."""
        backoff = self._backoff
        self._backoff = min(backoff * 2, MAX_BACKOFF)
        self._not_before = time.monotonic() + backoff
        return backoff

    def retry_after(self, refused: bool) -> float:
        """The session ended (``refused``: the collector would not have us): seconds to wait."""
        # Sessions that keep ending at once (a collector refusing what we send) must not turn
        # into a loop resending the history: each one waits twice as long, up to half a minute.
        lasted = time.monotonic() - self._session_started
        self._short = self._short + 1 if refused or lasted < 5.0 else 0
        if refused:
            self._short = max(self._short, 4)
        self._backoff = min(MIN_BACKOFF * 2**self._short, MAX_RETRY)
        self._not_before = time.monotonic() + self._backoff
        return self._backoff

    # The connection -----------------------------------------------------------------------------

    def connect(self) -> bool:
        """Dial and say hello; True once a collector welcomed us (``sock`` is then set)."""
        address = self.address
        if address.scheme == "unix":
            directory = os.path.dirname(address.path)
            if self._checks_directory and os.path.exists(directory) and not is_private_directory(directory):
                self.say_once(
                    logging.WARNING,
                    "asgispy: not streaming to %s: %s is not a directory private to this user",
                    address,
                    directory,
                )
                return False
            if not os.path.exists(address.path):
                return False
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target: Any = address.path
        else:
            family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            target = (address.host, address.port)
        try:
            sock.settimeout(HANDSHAKE_TIMEOUT)
            sock.connect(target)
            if address.scheme == "tcp":
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            origin = self._origin()
            hello = hello_frame(
                origin.tag, origin.host, origin.pid, origin.app, origin.started, self.token, self._control
            )
            sock.sendall(encode_frame(hello))
            frame = _read_reply(sock)
        except (OSError, ProtocolError) as exc:
            sock.close()
            if not isinstance(exc, (ConnectionRefusedError, FileNotFoundError)):
                self.say_once(logging.INFO, "asgispy: no usable collector at %s: %s", address, exc)
            return False
        if not isinstance(frame, dict) or frame.get("type") != "welcome":
            sock.close()
            self.say_once(
                logging.WARNING,
                "asgispy: the collector at %s refused this app: %s",
                address,
                frame.get("message", frame.get("type")),
            )
            return False
        sock.settimeout(None)
        self.sock = sock
        self._session_started = time.monotonic()
        return True

    def write(self, data: bytes, frames: int) -> None:
        """Write ``data``, which holds ``frames`` frames, whole (a stalled collector blocks it)."""
        sock = self.sock
        assert sock is not None
        self.frames_sent += frames
        sock.sendall(data, _SEND_FLAGS)
        self.bytes_sent += len(data)

    def check_alive(self) -> None:
        """Raise ConnectionError if the collector has gone (so that an idle app notices too)."""
        sock = self.sock
        assert sock is not None
        try:
            data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        if not data:
            raise ConnectionResetError("the collector closed the connection")
        # After its welcome a collector only speaks to say why it is dropping us.
        raise ConnectionResetError("the collector is dropping us")

    def refusal(self) -> str | None:
        """The reason the collector gave for dropping us, if it gave one (it is in our buffer)."""
        sock = self.sock
        if sock is None:
            return None
        try:
            data = sock.recv(64 * 1024, socket.MSG_DONTWAIT)
            frames = FrameReader(64 * 1024).feed(data) if data else []
            frame = decode_payload(frames[0]) if frames else None
        except (OSError, ProtocolError):
            return None
        if not isinstance(frame, dict) or frame.get("type") != "error":
            return None
        return str(frame.get("message", "?"))

    def shutdown(self) -> None:
        """Cut the connection from another thread: unblocks a sender stuck writing to a stalled peer."""
        sock = self.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Close our socket, if any; without shutdown, which after a fork would cut the parent off."""
        sock, self.sock = self.sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def say_once(self, level: int, message: str, *args: object) -> None:
        """Log ``message`` the first time only (at most 100 different ones): retries repeat it."""
        text = message % args
        if text not in self._said and len(self._said) < 100:
            self._said.add(text)
            logger.log(level, "%s", text)


def _read_reply(sock: socket.socket) -> Any:
    """The collector's answer to our hello: a frame (or a version-1 collector's JSON line)."""
    data = b""
    reader = FrameReader(64 * 1024)
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            raise ProtocolError("the collector closed the connection without answering")
        if not data and is_v1(chunk):
            line = chunk
            while b"\n" not in line and len(line) < 64 * 1024:
                more = sock.recv(4096)
                if not more:
                    break
                line += more

            raise ProtocolError(
                f"the collector speaks wire protocol 1 (an older asgispy) and this app's asgispy "
                f"{__version__} speaks 2: use the same asgispy on both sides (it said: {v1_message(line)})"
            )
        data += chunk
        frames = reader.feed(chunk)
        if frames:
            return decode_payload(frames[0])
