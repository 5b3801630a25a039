"""The producer: packs what ``Spy`` records and streams it to a collector, from a background thread.

The request path only appends to bounded queues: a connection as it begins (while a
collector listens) and once it has ended. No encoding, no I/O, no lock, no waiting, and
nothing at all per message. One thread per process does the rest:

* it packs each ended connection into one MessagePack buffer (secrets masked), which is what
  the history keeps and, as it is, what the wire carries: a short HTTP request goes out as one
  ``open`` frame with nothing encoded twice;
* it follows the connections still open: every few milliseconds it sends the messages their
  records gained, so a long stream or WebSocket is seen live;
* when no collector listens it retries now and then, and once one appears it first sends the
  history, so a viewer started late still sees the last connections.

When a queue is full, news is dropped and counted instead of blocking or growing. After a
``fork`` (gunicorn with ``--preload``, multiprocessing) the child starts a producer of its own,
under its own tag, on first use; the thread never touches an event loop.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import socket
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from time import perf_counter
from typing import Any

import msgspec

from asgispy.capture.history import History
from asgispy.capture.origin import Origin, fork_generation
from asgispy.capture.packing import pack_connection, pack_event_list
from asgispy.capture.record import ConnectionRecord
from asgispy.capture.snapshot import snapshot_message
from asgispy.codec import pack
from asgispy.version import __version__
from asgispy.wire.address import ENV_TOKEN, Address, default_address, is_private_directory, parse_address
from asgispy.wire.handshake import hello_frame, is_v1, v1_message
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

__all__ = ["Producer"]

logger = logging.getLogger("asgispy")

MiB = 1024 * 1024

#: Seconds to wait for a collector's answer to our hello.
HANDSHAKE_TIMEOUT = 3.0
#: Retry delays when no collector listens: from the first to the longest.
MIN_BACKOFF, MAX_BACKOFF = 0.05, 1.0
#: The longest wait before reconnecting to a collector that keeps dropping us.
MAX_RETRY = 30.0
#: How often the thread looks for news: ended connections to pack, new connections, new
#: messages in the records it follows. The request path never wakes it (that would cost a
#: system call per connection).
POLL = 0.01
#: How often it packs when nobody listens (the history only needs to stay compact).
IDLE_POLL = 0.05
#: Followed connections looked at per POLL; past that many the sender looks less often.
FOLLOW_PER_POLL = 2000
#: How often an idle sender checks that its collector is still there.
IDLE_CHECK = 0.5
#: The longest the end of a lifespan (the app shutting down) waits for the queue to empty.
SHUTDOWN_FLUSH = 0.5
#: Packed connections waiting to be written, at most (a count, and their bytes): past either,
#: they are dropped and counted (the history keeps them, and sends them on the next connect).
MAX_READY, MAX_READY_BYTES = 16384, 4 * MiB
#: Bytes gathered before a write.
WRITE_AT = 256 * 1024
#: The share of one CPU the sender may use by default for sending (packing is not limited:
#: the history must stay compact). Past it the sender rests and news is dropped and counted.
CPU_SHARE = 0.1
#: The window over which the sender's CPU share is measured, in seconds.
CPU_WINDOW = 0.5
_SEND_FLAGS = getattr(socket, "MSG_NOSIGNAL", 0)


class Producer:
    """Pack one process's recorded connections and stream them to the collector at ``address``.

    ``origin`` is read in the thread: who this process is now. ``history`` is the Spy's: the
    producer packs what ended there, and sends it first when a collector appears. With
    ``stream=False`` it only packs.
    """

    def __init__(
        self,
        address: str | Address | None,
        *,
        origin: Callable[[], Origin],
        history: History,
        token: str | None = None,
        max_queue: int = 8192,
        max_frame: int = MAX_FRAME,
        cpu_share: float = CPU_SHARE,
        stream: bool = True,
    ) -> None:
        if not 0 < cpu_share <= 1:
            raise ValueError("cpu_share is a fraction of one CPU: more than 0, at most 1")
        self.stream = stream
        self.address = parse_address(address) if address else default_address()
        self._checks_directory = address is None
        self._origin = origin
        self.history = history
        self.redactor = history.redactor
        self.token = token if token is not None else os.environ.get(ENV_TOKEN) or None
        self.max_queue = max_queue
        self.max_frame = max_frame
        self.cpu_share = cpu_share
        self._reset()
        _live.add(self)

    def _reset(self) -> None:
        """A fresh state: at construction, and in a child after ``fork``."""
        self._generation = fork_generation()
        #: connections that began, for the sender to follow (only while streaming)
        self._queue: deque[ConnectionRecord] = deque()
        #: packed connections to send whole, or to finish if followed
        self._ready: deque[ConnectionRecord] = deque()
        self._ready_bytes = 0
        self._wake = threading.Event()
        self._busy = False
        self._streaming = False
        self._closing = False
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._backoff = MIN_BACKOFF
        self._session_started = 0.0
        self._short = 0  # sessions in a row that ended soon after they began
        self._not_before = 0.0  # no reconnecting before this (time.monotonic)
        self._checked = 0.0
        self._window: tuple[float, float] | None = None  # (monotonic, thread CPU) at its start
        #: times the sender rested to stay within its CPU share
        self.rests = 0
        #: open connections being followed: how many of their messages were sent
        self._following: dict[ConnectionRecord, int] = {}
        self._followed = 0.0
        self._reported = 0
        self._tag = ""
        self._said: set[str] = set()
        #: news dropped because a queue was full (connection starts, ended connections)
        self.dropped = 0
        #: whether a collector accepted us and we are streaming to it
        self.connected = False
        #: frames and bytes written to collectors, for the curious and for tests
        self.frames_sent = 0
        self.bytes_sent = 0

    def __del__(self) -> None:
        sock = self.__dict__.get("_sock")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    # The request path: cheap, never blocking, never raising ------------------------------------
    # (Spy calls opened() only while _streaming, closed() only for a lifespan.)

    def opened(self, record: ConnectionRecord) -> None:
        queue = self._queue
        if len(queue) < self.max_queue:
            queue.append(record)
        else:
            self.dropped += 1

    def closed(self, record: ConnectionRecord) -> None:
        if record.type == "lifespan" and self._streaming:
            # The app is shutting down and the process may end at once (uvicorn re-raises
            # SIGTERM, so no atexit): let its last news out first, for a moment at most.
            self.flush(SHUTDOWN_FLUSH)

    # Lifecycle ----------------------------------------------------------------------------------

    @property
    def queued(self) -> int:
        """Items waiting for the sender."""
        return len(self._queue) + len(self._ready) + len(self.history._pending)

    def _start(self) -> None:
        # The thread holds the producer only weakly: a Spy that is dropped takes its sender along.
        self._thread = threading.Thread(
            target=_sender, args=(weakref.ref(self),), name="asgispy-sender", daemon=True
        )
        self._thread.start()

    def start(self) -> None:
        """Start the thread now rather than with the first connection."""
        if self._generation != fork_generation():
            self._after_fork()
        if self._thread is None:
            self._start()

    def _after_fork(self) -> None:
        # The parent's thread does not exist here and its socket is the parent's to use:
        # close our copy of the descriptor (without shutdown, which would cut the parent off).
        sock = self._sock
        self._reset()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def flush(self, timeout: float = 1.0) -> bool:
        """Wait up to ``timeout`` for everything recorded so far to be packed and written."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._streaming:
                self.history.pack_pending()
                return True
            if not self.queued and not self._busy and not self._behind():
                return True
            self._wake.set()
            time.sleep(0.002)
        return False

    def _behind(self) -> bool:
        """Whether a followed connection holds messages not sent yet (safe from any thread)."""
        for record, sent in list(self._following.items()):
            events = record._events
            if events is None or len(events) > sent:
                return True
        return False

    def close(self, timeout: float = 1.0) -> None:
        """Send what is queued (up to ``timeout``), then disconnect and stop the thread."""
        if self._generation != fork_generation():
            return
        if self._streaming:
            self.flush(timeout)
        self._closing = True
        self._streaming = False
        self._wake.set()
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # unblocks a sender stuck writing to a stalled peer
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # The thread ---------------------------------------------------------------------------------

    def _step(self) -> float | None:
        """One round of the thread's work: seconds to wait for news next, or None to go on."""
        history = self.history
        history.pack_pending()  # to the sink while streaming, as far as it has room
        if history._overflow and self._streaming and not self._ready and not history._pending:
            history.catch_up()
        if not self.stream:
            return IDLE_POLL
        sock = self._sock
        if sock is None:
            wait = self._not_before - time.monotonic()
            if wait > 0:
                return min(wait, IDLE_POLL) if history._pending else wait
            try:
                sock = self._connect()
            except Exception:
                logger.exception("asgispy: unexpected error connecting to %s", self.address)
                sock = None
            if sock is None:
                backoff = self._backoff
                self._backoff = min(backoff * 2, MAX_BACKOFF)
                self._not_before = time.monotonic() + backoff
                # Nobody listens: the app compacts what ends on its own, so wake only to retry.
                return min(backoff, IDLE_POLL) if history._pending else backoff
            self._session_started = time.monotonic()
            return self._guarded(self._replay)
        if (
            self._queue
            or self._ready
            or self._following
            or self.dropped + self.history.unpacked != self._reported
        ):
            rest = self._rest()
            if rest > 0:
                self.rests += 1
                return rest
            retry = self._guarded(self._drain)
            self._busy = False
            return POLL if retry is None else retry
        self._busy = False
        self._idle_check()
        return POLL

    def _rest(self) -> float:
        """Seconds to rest before working again, to keep within ``cpu_share`` (sender thread)."""
        now, cpu = time.monotonic(), time.thread_time()
        window = self._window
        if window is None or now - window[0] > CPU_WINDOW:
            self._window = (now, cpu)
            return 0.0
        started, cpu_at_start = window
        return (cpu - cpu_at_start) / self.cpu_share - (now - started)

    def _guarded(self, work: Callable[[socket.socket], None]) -> float | None:
        """Do ``work``; if the connection fails, disconnect and say how long to wait to retry."""
        sock = self._sock
        assert sock is not None
        try:
            work(sock)
        except OSError as exc:
            refusal = _refusal(sock)
            if refusal is not None:
                self._say_once(
                    logging.WARNING, "asgispy: the collector at %s dropped us: %s", self.address, refusal
                )
            elif not self._closing:
                logger.info("asgispy: lost the collector at %s (%s); will reconnect", self.address, exc)
            return self._retry_after(refused=refusal is not None)
        except Exception:
            logger.exception("asgispy: the sender failed; reconnecting")
            return self._retry_after(refused=True)
        return None

    def _retry_after(self, refused: bool) -> float:
        # Sessions that keep ending at once (a collector refusing what we send) must not turn
        # into a loop resending the history: each one waits twice as long, up to half a minute.
        lasted = time.monotonic() - self._session_started
        self._disconnect()
        self._short = self._short + 1 if refused or lasted < 5.0 else 0
        if refused:
            self._short = max(self._short, 4)
        self._backoff = min(MIN_BACKOFF * 2**self._short, MAX_RETRY)
        self._not_before = time.monotonic() + self._backoff
        return self._backoff

    def _idle_check(self) -> None:
        """Now and then, with nothing to send: notice a collector that went away, so that an idle
        app reconnects (and sends its history) as soon as a new one appears."""
        sock = self._sock
        now = time.monotonic()
        if sock is not None and now - self._checked > IDLE_CHECK:
            self._checked = now
            self._guarded(_check_alive)

    def _disconnect(self) -> None:
        self._streaming = False
        self.history.sink = None
        self.history._overflow.clear()  # in the history still: sent with it on reconnect
        self.connected = False
        self._queue.clear()  # what it held is in the history, and goes out again on reconnect
        self._ready.clear()
        self._ready_bytes = 0
        self._following.clear()
        self._busy = False
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def _say_once(self, level: int, message: str, *args: object) -> None:
        text = message % args
        if text not in self._said and len(self._said) < 100:
            self._said.add(text)
            logger.log(level, "%s", text)

    def _connect(self) -> socket.socket | None:
        address = self.address
        if address.scheme == "unix":
            directory = os.path.dirname(address.path)
            if self._checks_directory and os.path.exists(directory) and not is_private_directory(directory):
                self._say_once(
                    logging.WARNING,
                    "asgispy: not streaming to %s: %s is not a directory private to this user",
                    address,
                    directory,
                )
                return None
            if not os.path.exists(address.path):
                return None
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
            self._tag = origin.tag
            hello = hello_frame(origin.tag, origin.host, origin.pid, origin.app, origin.started, self.token)
            sock.sendall(encode_frame(hello))
            frame = _read_reply(sock)
        except (OSError, ProtocolError) as exc:
            sock.close()
            if not isinstance(exc, (ConnectionRefusedError, FileNotFoundError)):
                self._say_once(logging.INFO, "asgispy: no usable collector at %s: %s", address, exc)
            return None
        if not isinstance(frame, dict) or frame.get("type") != "welcome":
            sock.close()
            self._say_once(
                logging.WARNING,
                "asgispy: the collector at %s refused this app: %s",
                address,
                frame.get("message", frame.get("type")),
            )
            return None
        sock.settimeout(None)
        self._sock = sock
        return sock

    def _replay(self, sock: socket.socket) -> None:
        """Just connected: from now on the request path queues; first send the history."""
        self._following.clear()
        self._queue.clear()
        self._ready.clear()
        self._ready_bytes = 0
        self.history.sink = self._packed
        self._streaming = True
        self.connected = True
        logger.debug("asgispy: streaming to %s", self.address)
        self._busy = True
        out = _Out(self, sock)
        for record in self.history.records():
            self._whole_or_follow(record, out)
        out.flush()

    def _packed(self, record: ConnectionRecord) -> bool:
        """The history packed an ended connection: send it. False when too many wait to be
        written (a slow viewer): the history holds it meanwhile, within its own bounds, and what
        it can no longer hold is counted as dropped."""
        ready = self._ready
        if len(ready) < MAX_READY and self._ready_bytes < MAX_READY_BYTES:
            ready.append(record)
            self._ready_bytes += record.size
            return True
        return False

    def _drain(self, sock: socket.socket) -> None:
        """Send the news: new connections, packed ones, and what followed ones gained."""
        self._busy = True
        out = _Out(self, sock)
        queue, ready, following = self._queue, self._ready, self._following
        young = perf_counter() - POLL
        # Connections that began a moment ago are left for the next look: most end by then
        # and go out whole, packed, in one frame.
        while queue and queue[0].t0 < young and not self._closing:
            record = queue.popleft()
            if record.packed is None and record.outcome == "open" and record not in following:
                self._guard(record, self._begin, out)
        while ready and not self._closing:
            record = ready.popleft()
            self._ready_bytes -= record.size
            self._guard(record, self._whole_or_finish, out)
        if following and time.monotonic() - self._followed >= POLL * max(
            1.0, len(following) / FOLLOW_PER_POLL
        ):
            self._followed = time.monotonic()
            for record, sent in list(following.items()):
                events = record._events
                if events is not None and len(events) > sent:
                    self._guard(record, self._more, out)
        dropped = self.dropped + self.history.unpacked
        if dropped != self._reported:
            self._reported = dropped
            out.add(encode_frame([DROPPED, dropped]))
        out.flush()

    def _guard(
        self, record: ConnectionRecord, work: Callable[[ConnectionRecord, _Out], None], out: _Out
    ) -> None:
        try:
            work(record, out)
        except OSError:
            raise
        except Exception as exc:
            self._following.pop(record, None)
            self.dropped += 1
            self._say_once(logging.WARNING, "asgispy: could not send connection %s: %r", record.id, exc)

    def _whole_or_follow(self, record: ConnectionRecord, out: _Out) -> None:
        """A record from the history: whole if ended, else as far as it goes, then followed."""
        if record.packed is None and record.outcome != "open":
            self.history.repack(record)  # ended while nobody streamed
        if record.packed is not None:
            self._guard(record, self._whole, out)
        elif record.outcome == "open":
            self._guard(record, self._begin, out)
        # An ended record not packed yet comes through the ready queue in a moment.

    def _whole_or_finish(self, record: ConnectionRecord, out: _Out) -> None:
        sent = self._following.pop(record, None)
        if sent is None:
            self._whole(record, out)
        else:
            self._finish(record, sent, out)

    def _whole(self, record: ConnectionRecord, out: _Out) -> None:
        """A packed connection, as it is (nothing encoded again), or in pieces if too large."""
        packed = record.packed
        assert packed is not None
        if len(packed) + 16 <= self.max_frame:
            out.add(encode_frame([OPEN, msgspec.Raw(packed)]))
            return
        seq, kind, started, scope, _, _ = pack.decode(packed)
        opening = [seq, kind, started, pack.pack_value(scope, True), [], None]
        out.add(self._bounded(encode_frame([OPEN, opening]), "its scope alone"))
        self._finish(record, 0, out)

    def _begin(self, record: ConnectionRecord, out: _Out) -> None:
        """An open connection: its scope and messages so far; then follow it."""
        events = record._events
        if events is None:
            return
        count = _settled(events)
        data = encode_frame([OPEN, msgspec.Raw(pack_connection(record, 0, 0, self.redactor, None))])
        out.add(self._bounded(data, "its scope alone"))
        self._following[record] = 0
        if count:
            self._send_events(record, events, 0, count, out)
        self._following[record] = count

    def _more(self, record: ConnectionRecord, out: _Out) -> None:
        events = record._events
        sent = self._following.get(record)
        if events is None or sent is None:
            return
        count = _settled(events)
        self._send_events(record, events, sent, count, out)
        self._following[record] = count

    def _finish(self, record: ConnectionRecord, sent: int, out: _Out) -> None:
        """The rest of a followed connection that has ended (from its packed form), and its end."""
        packed = record.packed
        assert packed is not None
        seq, _, _, _, events, end = pack.decode(packed)
        decoded = [["send" if e[0] else "receive", *e[1:]] for e in events]
        if len(decoded) > sent:
            self._send_events(record, decoded, sent, len(decoded), out, masked=True)
        out.add(encode_frame([CLOSE, seq, pack.pack_value(end, True)]))

    def _send_events(
        self,
        record: ConnectionRecord,
        events: list[Any],
        start: int,
        stop: int,
        out: _Out,
        masked: bool = False,
    ) -> None:
        """Events ``start:stop`` in frames within the bound (one event too large is cut further)."""
        redactor = None if masked else self.redactor
        index = start
        while index < stop:
            end = min(stop, index + 256)
            data = encode_frame(
                [EVENTS, record.seq, index, msgspec.Raw(pack_event_list(events, index, end, redactor))]
            )
            while len(data) > self.max_frame and end - index > 1:
                end = index + max((end - index) // 2, 1)
                data = encode_frame(
                    [EVENTS, record.seq, index, msgspec.Raw(pack_event_list(events, index, end, redactor))]
                )
            if len(data) > self.max_frame:
                # Only with max_body near the frame limit: cut the payload further rather than lose it.
                direction, t, message, cut, wait = events[index][:5]
                smaller, more_cut, _ = snapshot_message(message, self.max_frame // 8)
                event = [direction, t, smaller, {**(cut or {}), **(more_cut or {})} or None, wait]
                data = encode_frame(
                    [EVENTS, record.seq, index, msgspec.Raw(pack_event_list([event], 0, 1, redactor))]
                )
            out.add(self._bounded(data, "one of its messages"))
            index = end

    def _bounded(self, data: bytes, what: str) -> bytes:
        if len(data) > self.max_frame:
            raise ValueError(f"{what} is over {self.max_frame} bytes")
        return data


def _settled(events: list[Any]) -> int:
    """How many of an open connection's events can go now: all but a last one the app is still
    sending (its wait, the time the server held it, is not known until send() returns)."""
    count = len(events)
    if count:
        last = events[-1]
        if last[4] is None and last[0] == "send":
            return count - 1
    return count


class _Out:
    """Frames gathered for one write, written as they reach :data:`WRITE_AT` bytes."""

    __slots__ = ("frames", "producer", "size", "sock")

    def __init__(self, producer: Producer, sock: socket.socket) -> None:
        self.producer = producer
        self.sock = sock
        self.frames: list[bytes] = []
        self.size = 0

    def add(self, frame: bytes) -> None:
        self.frames.append(frame)
        self.size += len(frame)
        if self.size >= WRITE_AT:
            self.flush()

    def flush(self) -> None:
        frames = self.frames
        if not frames:
            return
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        producer = self.producer
        producer.frames_sent += len(frames)
        self.frames = []
        self.size = 0
        self.sock.sendall(data, _SEND_FLAGS)
        producer.bytes_sent += len(data)


def _sender(ref: weakref.ReferenceType[Producer]) -> None:
    """The sender thread. It holds its producer only while working, never while waiting."""
    while True:
        producer = ref()
        if producer is None or producer._closing:
            if producer is not None:
                producer._disconnect()
            return
        try:
            wait = producer._step()
        except Exception:  # a bug of ours must not end streaming for the life of the process
            logger.exception("asgispy: the sender failed")
            wait = MAX_BACKOFF
        wake = producer._wake
        del producer
        if wait is None:
            continue
        wake.wait(wait)
        wake.clear()
        producer = ref()
        if producer is None:
            return
        del producer


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


def _check_alive(sock: socket.socket) -> None:
    """Raise ConnectionError if the collector has gone (so that an idle app notices too)."""
    try:
        data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return
    if not data:
        raise ConnectionResetError("the collector closed the connection")
    # After its welcome a collector only speaks to say why it is dropping us.
    raise ConnectionResetError("the collector is dropping us")


def _refusal(sock: socket.socket) -> str | None:
    """The reason a collector gave for dropping us, if it gave one (it is already in our buffer)."""
    try:
        data = sock.recv(64 * 1024, socket.MSG_DONTWAIT)
        frames = FrameReader(64 * 1024).feed(data) if data else []
        frame = decode_payload(frames[0]) if frames else None
    except (OSError, ProtocolError):
        return None
    if not isinstance(frame, dict) or frame.get("type") != "error":
        return None
    return str(frame.get("message", "?"))


_live: weakref.WeakSet[Producer] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    # A server that shuts down cleanly records its lifespan shutdown last: let it reach the viewer.
    for producer in list(_live):
        if producer._generation == fork_generation() and producer._streaming:
            producer.flush(0.5)
