"""The producer: streams what ``Spy`` records to a collector, from a background thread.

The request path appends a reference to a bounded queue twice per connection, when it
begins and when it ends: no encoding, no I/O, no lock, no waiting, and nothing at all per
message. One sender thread per process encodes and writes. It follows the connections it
was told of: every few milliseconds it sends the messages their records gained, so a long
stream or WebSocket is seen live. When the queue is full, news is dropped and counted
instead of blocking or growing; a connection whose start was dropped still goes out whole
with its end. When no collector listens, nothing is queued at all: the sender retries now
and then, and once a collector appears it first sends the recent history, so a viewer
started late still sees the last connections.

After a ``fork`` (gunicorn with ``--preload``, multiprocessing) the child starts a producer
of its own, under its own tag, on first use; the sender never touches an event loop, so any
number of loops in any threads may feed it.
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
from typing import Any

import orjson

from asgispy.capture import codec, redact
from asgispy.capture.origin import Origin, fork_generation
from asgispy.capture.record import (
    ConnectionRecord,
    RecordedEvent,
    error_document,
    handler_document,
    snapshot_message,
)
from asgispy.capture.redact import Redactor
from asgispy.wire.address import ENV_TOKEN, Address, default_address, is_private_directory, parse_address
from asgispy.wire.protocol import (
    MAX_FRAME,
    ProtocolError,
    close_frame,
    decode_frame,
    dropped_frame,
    event_frame,
    hello_frame,
    open_frame,
)

__all__ = ["Producer"]

logger = logging.getLogger("asgispy")

MiB = 1024 * 1024

_OPEN, _CLOSE = 0, 1
_FINISHED = -1  # a record whose whole document, end included, has been sent
_STALE = -2  # ... and that was so at the last sweep already

#: Seconds to wait for a collector's answer to our hello.
HANDSHAKE_TIMEOUT = 3.0
#: Retry delays when no collector listens: from the first to the longest.
MIN_BACKOFF, MAX_BACKOFF = 0.05, 1.0
#: The longest wait before reconnecting to a collector that keeps dropping us.
MAX_RETRY = 30.0
#: How often a connected sender looks for news: new connections in the queue, new messages in
#: the records it follows. The request path does not wake it (that would cost a system call
#: per connection), unless the queue fills past a quarter.
POLL = 0.01
#: Followed connections looked at per POLL; past that many the sender looks less often.
FOLLOW_PER_POLL = 2000
#: How often an idle sender checks that its collector is still there.
IDLE_CHECK = 0.5
#: How often the sender forgets connections sent whole whose end news never came.
SWEEP = 0.5
#: The longest the end of a lifespan (the app shutting down) waits for the queue to empty.
SHUTDOWN_FLUSH = 0.5
#: Queue items encoded per write; small enough to hand the GIL back to the app often.
BATCH = 128
#: Events sent inside an ``open`` frame at most; more follow as event frames.
INLINE_EVENTS = 256
INLINE_BYTES = 1 * MiB
#: The share of one CPU the sender may use by default. Encoding runs under the GIL, so every
#: moment the sender works is a moment the app does not: past this share the sender rests,
#: the queue fills, and news is dropped and counted rather than the app slowed.
CPU_SHARE = 0.1
#: The window over which the sender's CPU share is measured, in seconds.
CPU_WINDOW = 0.5
_SEND_FLAGS = getattr(socket, "MSG_NOSIGNAL", 0)
_ITEM_OVERHEAD = 200


def _payload_size(message: dict[str, Any]) -> int:
    body = message.get("body")
    if body is None:
        body = message.get("bytes")
        if body is None:
            body = message.get("text")
    return len(body) if body else 0


class Producer:
    """Stream one process's recorded connections to the collector at ``address``.

    ``origin`` and ``history`` are read in the sender thread: who this process is now, and
    the records to send first when a collector appears.
    """

    def __init__(
        self,
        address: str | Address | None,
        *,
        origin: Callable[[], Origin],
        history: Callable[[], list[ConnectionRecord]],
        redactor: Redactor,
        token: str | None = None,
        max_queue: int = 8192,
        max_queue_bytes: int = 32 * MiB,
        max_frame: int = MAX_FRAME,
        cpu_share: float = CPU_SHARE,
    ) -> None:
        if not 0 < cpu_share <= 1:
            raise ValueError("cpu_share is a fraction of one CPU: more than 0, at most 1")
        self.address = parse_address(address) if address else default_address()
        self._checks_directory = address is None
        self._origin = origin
        self._history = history
        self.redactor = redactor
        self.token = token if token is not None else os.environ.get(ENV_TOKEN) or None
        self.max_queue = max_queue
        self.max_queue_bytes = max_queue_bytes
        self.max_frame = max_frame
        self.cpu_share = cpu_share
        self._wake_at = max(max_queue // 4, 1)
        self._hard_limit = max_queue + max_queue // 8
        self._reset()
        _live.add(self)

    def _reset(self) -> None:
        """A fresh state: at construction, and in a child after ``fork``."""
        self._generation = fork_generation()
        self._queue: deque[tuple[int, ConnectionRecord, int]] = deque()  # (kind, record, size)
        self._wake = threading.Event()
        self._idle = False
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
        self._swept = 0.0
        self._swept_size = 0
        self._encoder = _Encoder(self.redactor)
        self._window: tuple[float, float] | None = None  # (monotonic, thread CPU) at its start
        #: times the sender rested to stay within its CPU share
        self.rests = 0
        #: open connections being followed: the index of the next message to send of each
        self._following: dict[ConnectionRecord, int] = {}
        self._followed = 0.0
        #: connections sent whole, end included (_FINISHED, then _STALE), until their end news
        #: passes through the queue or a sweep or two go by
        self._sent: dict[ConnectionRecord, int] = {}
        self._in_bytes = 0  # written only by the request path
        self._out_bytes = 0  # written only by the sender
        self._reported = 0
        self._tag = ""
        self._said: set[str] = set()
        #: news dropped because the queue was full (messages, connection starts and ends)
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
    # (Spy calls closed() only while _streaming: with no collector, opened() alone. Messages
    # need no call at all: the sender finds them in the records it follows.)

    def opened(self, record: ConnectionRecord) -> None:
        if self._thread is None or self._generation != fork_generation():
            self.start()
        if self._streaming:
            queue = self._queue
            n = len(queue)
            if n < self.max_queue and self._in_bytes - self._out_bytes < self.max_queue_bytes:
                queue.append((_OPEN, record, 0))
                if self._idle and n >= self._wake_at:
                    self._idle = False
                    self._wake.set()
            else:
                self.dropped += 1

    def closed(self, record: ConnectionRecord) -> None:
        if self._streaming:
            queue = self._queue
            n = len(queue)
            # Ends get a reserve beyond the bound, as they bring a connection whose start was
            # dropped. The bytes bound counts finished records: until sent, the queue holds them.
            size = record.size
            if n < self._hard_limit and self._in_bytes - self._out_bytes + size <= self.max_queue_bytes:
                self._in_bytes += size
                queue.append((_CLOSE, record, size))
                if self._idle and n >= self._wake_at:
                    self._idle = False
                    self._wake.set()
            else:
                self.dropped += 1
            if record.type == "lifespan":
                # The app is shutting down and the process may end at once (uvicorn re-raises
                # SIGTERM, so no atexit): let its last news out first, for a moment at most.
                self.flush(SHUTDOWN_FLUSH)

    # Lifecycle ----------------------------------------------------------------------------------

    @property
    def queued(self) -> int:
        """Items waiting for the sender."""
        return len(self._queue)

    @property
    def queued_bytes(self) -> int:
        """Estimated bytes of the messages waiting for the sender."""
        return max(self._in_bytes - self._out_bytes, 0)

    def _start(self) -> None:
        # The thread holds the producer only weakly: a Spy that is dropped takes its sender along.
        self._thread = threading.Thread(
            target=_sender, args=(weakref.ref(self),), name="asgispy-sender", daemon=True
        )
        self._thread.start()

    def start(self) -> None:
        """Start the sender now rather than with the first connection."""
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
        """Wait up to ``timeout`` for everything recorded so far to be written; False if it was not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._streaming:
                return not self._queue
            if not self._queue and not self._busy and not self._behind():
                return True
            self._wake.set()
            time.sleep(0.002)
        return False

    def _behind(self) -> bool:
        """Whether a followed connection holds messages not sent yet (safe from any thread)."""
        return any(len(record.events) > state for record, state in list(self._following.items()))

    def close(self, timeout: float = 1.0) -> None:
        """Send what is queued (up to ``timeout``), then disconnect and stop the sender."""
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

    # The sender thread ----------------------------------------------------------------------------

    def _step(self) -> float | None:
        """One round of the sender's work: seconds to wait for news next, or None to go on."""
        sock = self._sock
        if sock is None:
            wait = self._not_before - time.monotonic()
            if wait > 0:
                return wait
            try:
                sock = self._connect()
            except Exception:
                logger.exception("asgispy: unexpected error connecting to %s", self.address)
                sock = None
            if sock is None:
                backoff = self._backoff
                self._backoff = min(backoff * 2, MAX_BACKOFF)
                return backoff
            self._session_started = time.monotonic()
            return self._guarded(self._replay)
        if self._queue or self.dropped != self._reported or self._sweep_due() or self._follow_due():
            rest = self._rest()
            if rest > 0:
                self.rests += 1
                return rest
            return self._guarded(self._drain)
        self._busy = False
        self._idle = True
        if len(self._queue) >= self._wake_at:  # filled up while we were deciding to wait
            self._idle = False
            return None
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
        if sock is not None and not self._queue and now - self._checked > IDLE_CHECK:
            self._checked = now
            self._guarded(_check_alive)

    def _disconnect(self) -> None:
        self._streaming = False
        self.connected = False
        self._queue.clear()  # what it held is in the records, and goes out again on reconnect
        self._out_bytes = self._in_bytes
        self._following.clear()
        self._sent.clear()
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
            sock.sendall(orjson.dumps(hello, option=orjson.OPT_APPEND_NEWLINE))
            reply = _read_line(sock, 64 * 1024)
            frame = decode_frame(reply)
        except (OSError, ProtocolError) as exc:
            sock.close()
            if not isinstance(exc, (ConnectionRefusedError, FileNotFoundError)):
                self._say_once(logging.INFO, "asgispy: no usable collector at %s: %s", address, exc)
            return None
        if frame.get("type") != "welcome":
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
        self._sent.clear()
        self._streaming = True
        self.connected = True
        logger.debug("asgispy: streaming to %s", self.address)
        frames: list[bytes] = []
        pending = 0
        self._busy = True
        for record in self._history():
            pending += self._news_of(record, frames)
            if pending > 256 * 1024:
                self._write(sock, frames)
                pending = 0
        self._write(sock, frames)

    def _drain(self, sock: socket.socket) -> None:
        """Send a few batches of news (then let the outer loop look at the world again)."""
        queue = self._queue
        frames: list[bytes] = []
        for _ in range(8):
            if queue:
                self._busy = True
                batch = [queue.popleft() for _ in range(min(len(queue), BATCH))]
                self._encode_batch(batch, frames)
            if self.dropped != self._reported:
                self._reported = self.dropped
                frames.append(self._encode(dropped_frame(self._reported)))
            if self._follow_due():
                self._follow(frames)
            if self._sweep_due():
                self._sweep()
            self._write(sock, frames)
            if not queue or self._closing:
                return

    def _write(self, sock: socket.socket, frames: list[bytes]) -> None:
        if not frames:
            return
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        self.frames_sent += len(frames)
        frames.clear()
        sock.sendall(data, _SEND_FLAGS)
        self.bytes_sent += len(data)

    def _encode_batch(self, batch: list[tuple[int, ConnectionRecord, int]], frames: list[bytes]) -> None:
        following, sent = self._following, self._sent
        done = 0
        for kind, record, size in batch:
            done += size
            try:
                state = following.get(record)
                if state is not None:  # followed: its end is here, send what is left and the end
                    if kind == _CLOSE:
                        del following[record]
                        self._finish(record, state, frames)
                elif record in sent:  # sent whole already
                    if kind == _CLOSE:
                        del sent[record]
                else:  # news of a connection not seen yet (or whose start was dropped)
                    self._news_of(record, frames)
                    if kind == _CLOSE:
                        sent.pop(record, None)
            except Exception as exc:
                following.pop(record, None)
                sent.pop(record, None)
                self.dropped += 1
                self._say_once(logging.WARNING, "asgispy: could not send connection %s: %r", record.id, exc)
        self._out_bytes += done

    def _follow_due(self) -> bool:
        if not self._following:
            return False
        # A poll looks at every followed connection: with very many open, it comes less often.
        interval = POLL * max(1.0, len(self._following) / FOLLOW_PER_POLL)
        return time.monotonic() - self._followed >= interval

    def _follow(self, frames: list[bytes]) -> None:
        """Send the messages the followed connections gained since the last look, and the end
        of those that ended (their end news may be queued still, or was dropped)."""
        self._followed = time.monotonic()
        following = self._following
        for record, state in list(following.items()):
            try:
                if record.outcome != "open":  # written last: an ended record is complete
                    del following[record]
                    self._finish(record, state, frames)
                    self._sent[record] = _FINISHED  # until its end news, perhaps still queued, passes
                    continue
                count = len(record.events)
                if count > state:
                    self._events(record, state, count, frames)
                    following[record] = count
            except Exception as exc:
                following.pop(record, None)
                self.dropped += 1
                self._say_once(logging.WARNING, "asgispy: could not send connection %s: %r", record.id, exc)

    def _sweep_due(self) -> bool:
        sent = len(self._sent)
        if not sent:
            return False
        return time.monotonic() - self._swept > SWEEP or sent > max(self._wake_at, 2 * self._swept_size)

    def _sweep(self) -> None:
        """Now and then, forget connections sent whole whose end news never came (dropped with
        a full queue, or sent from the history): nothing here outlives its connection by more
        than a sweep or two."""
        self._swept = time.monotonic()
        sent = self._sent
        for record, state in list(sent.items()):
            if state == _STALE:
                del sent[record]
            else:
                sent[record] = _STALE
        self._swept_size = len(sent)

    def _news_of(self, record: ConnectionRecord, frames: list[bytes]) -> int:
        """Send all of ``record`` seen so far as an open frame (and event frames past the inline
        limit), its end included if it has ended; follow it if not. Returns the bytes encoded."""
        finished = record.outcome != "open"  # written last: an ended record is complete
        events = list(record.events)
        inline: list[dict[str, Any]] = []
        budget = INLINE_BYTES
        encoder = self._encoder
        for event in events:
            if len(inline) >= INLINE_EVENTS or budget < 0:
                break
            budget -= _payload_size(event[2]) * 2 + _ITEM_OVERHEAD
            inline.append(encoder.event(event))
        doc: dict[str, Any] = {
            "id": record.id,
            "seq": record.seq,
            "producer": self._tag,
            "type": record.type,
            "started": record.started,
            "duration": None,
            "outcome": "open",
            "scope": encoder.mapping(record.scope),
            "events": inline,
            "events_dropped": 0,
            "error": None,
            "handler": None,
            "notes": list(record.notes),
        }
        complete = finished and len(inline) == len(events)
        if complete:
            doc.update(self._end(record))
        data = self._encode(open_frame(doc))
        if len(data) > self.max_frame and inline:
            doc["events"] = inline = []
            complete = False
            data = self._encode(open_frame(doc))
        if len(data) > self.max_frame:
            raise ValueError(f"its scope alone is over {self.max_frame} bytes")
        frames.append(data)
        size = len(data)
        if complete:
            self._sent[record] = _FINISHED
            return size
        count = len(events)
        for i in range(len(inline), count):
            data = self._event(record, i, events[i])
            frames.append(data)
            size += len(data)
        if finished:
            self._finish(record, count, frames)
            self._sent[record] = _FINISHED
        else:
            self._following[record] = count
        return size

    def _finish(self, record: ConnectionRecord, start: int, frames: list[bytes]) -> None:
        """The messages of an ended record from ``start`` on, then its end."""
        self._events(record, start, len(record.events), frames)
        frames.append(self._encode(close_frame(record.id, self._end(record))))

    def _events(self, record: ConnectionRecord, start: int, stop: int, frames: list[bytes]) -> None:
        events = record.events
        for i in range(start, min(stop, len(events))):
            frames.append(self._event(record, i, events[i]))

    def _event(self, record: ConnectionRecord, index: int, event: RecordedEvent) -> bytes:
        data = self._encode(event_frame(record.id, index, self._encoder.event(event)))
        if len(data) > self.max_frame:
            # Only with max_body near the frame limit: cut the payload further rather than lose it.
            direction, t, message, cut = event
            smaller, more_cut, _ = snapshot_message(message, self.max_frame // 8)
            event = (direction, t, smaller, {**(cut or {}), **(more_cut or {})} or None)
            data = self._encode(event_frame(record.id, index, self._encoder.event(event)))
        return data

    def _end(self, record: ConnectionRecord) -> dict[str, Any]:
        return {
            "outcome": record.outcome,
            "duration": record.ended,
            "error": error_document(record.error),
            "handler": self._encoder.handler(record.handler),
            "notes": list(record.notes),
            "events_dropped": record.dropped_events,
        }

    @staticmethod
    def _encode(frame: dict[str, Any]) -> bytes:
        return orjson.dumps(frame, option=orjson.OPT_APPEND_NEWLINE)


class _Encoder:
    """What ``record.py``'s ``*_document`` functions make of scopes, messages and handlers, the
    same to the byte, faster: the encoded forms of small values that recur from one connection
    to the next (header pairs, methods, paths, versions, addresses, routes) are remembered.

    Anything unusual (keys the codec must tag, odd header lists, containers) goes to the codec
    itself. The memory is bounded: past its size it is simply forgotten.
    """

    LIMIT = 4096  # remembered values, of each kind
    SMALL = 256  # the longest str or bytes remembered

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        # The fields Redactor.message masks (header lists); none when it masks nothing.
        self.masked = frozenset(redact._HEADER_FIELDS if redactor else ())
        self.texts: dict[str, Any] = {}
        self.bytes: dict[bytes, Any] = {}
        self.addresses: dict[tuple[str, int], Any] = {}
        self.pairs: dict[tuple[bytes, bytes], Any] = {}  # header pairs, never secret ones
        self.handlers: dict[tuple[int, int], tuple[Any, Any, Any]] = {}
        self.keys: set[str] = set()  # keys known to need no tag (exact str only: see mapping)
        self.dicts: dict[tuple[tuple[str, str], ...], Any] = {}

    def event(self, event: RecordedEvent) -> dict[str, Any]:
        direction, t, message, cut = event
        doc: dict[str, Any] = {"direction": direction, "t": t, "message": self.mapping(message)}
        if cut:
            doc["cut"] = cut
        return doc

    def mapping(self, value: dict[str, Any]) -> Any:
        """``codec.encode(redactor.message(value))`` for a scope or message."""
        out: dict[str, Any] = {}
        masked = self.masked
        keys = self.keys
        for key, item in value.items():
            if type(key) is not str or key not in keys:
                if type(key) is not str or key.startswith("$") or not key.isascii():
                    return codec.encode(self.redactor.message(value))
                if len(key) <= self.SMALL and len(keys) < self.LIMIT:
                    keys.add(key)
            kind = type(item)
            if kind is not list and key in masked:
                # Headers in some other container (a tuple): the redactor knows what to mask.
                return codec.encode(self.redactor.message(value))
            if kind is bool or item is None:  # more_body, trailers, ...
                out[key] = item
                continue
            if kind is str:
                encoded = self.texts.get(item)
                if encoded is None:
                    encoded = self._remember(self.texts, item)
            elif kind is bytes:
                encoded = self.bytes.get(item)
                if encoded is None:
                    encoded = (
                        self._remember(self.bytes, item) if len(item) <= self.SMALL else codec.encode(item)
                    )
            elif kind is list:
                encoded = self.headers(item, key in masked)
                if encoded is None:
                    return codec.encode(self.redactor.message(value))
            elif kind is tuple and len(item) == 2 and type(item[0]) is str and type(item[1]) is int:
                encoded = self.addresses.get(item)  # (host, port)
                if encoded is None:
                    encoded = self._remember(self.addresses, item)
            elif kind is int and -codec.INT_LIMIT < item < codec.INT_LIMIT:  # a status, a code
                encoded = item
            elif kind is dict and len(item) <= 4:  # the scope's "asgi" and "state", often
                encoded = self.small_dict(item)
            else:
                encoded = codec.encode(item, 1)
            out[key] = encoded
        return out

    def small_dict(self, item: dict[Any, Any]) -> Any:
        """A small dict of plain text, from memory (keyed by its items: only when every key and
        value is exactly ``str``, since ``1``, ``1.0`` and ``True`` would share a key)."""
        if not item:
            return {}
        pairs = tuple(item.items())
        for key, text in pairs:
            if type(key) is not str or type(text) is not str:
                return codec.encode(item, 1)
        encoded = self.dicts.get(pairs)
        if encoded is None:
            encoded = codec.encode(item, 1)
            if len(self.dicts) >= self.LIMIT:
                self.dicts.clear()
            self.dicts[pairs] = encoded
        return encoded

    def _remember(self, memory: dict[Any, Any], item: Any) -> Any:
        encoded = codec.encode(item, 1)
        if type(item) is tuple or len(item) <= self.SMALL:
            if len(memory) >= self.LIMIT:
                memory.clear()
            memory[item] = encoded
        return encoded

    def headers(self, items: list[Any], masked: bool) -> Any:
        """A list as the codec encodes it; None when it must be masked but is no plain header
        list (then the caller leaves the whole mapping to the redactor and the codec)."""
        pairs = self.pairs
        out = []
        for item in items:
            if (
                type(item) is not tuple
                or len(item) != 2
                or type(item[0]) is not bytes
                or type(item[1]) is not bytes
            ):
                return None if masked else codec.encode(items, 1)
            encoded = pairs.get(item)
            if encoded is None:
                if self.masked and self.redactor.is_secret(item[0]):
                    # Never remembered, so that a secret is never reused unmasked (or kept).
                    secret = (item[0], redact.REDACTED) if masked else item
                    encoded = codec.encode([secret], 1)["$headers"][0]
                else:
                    encoded = codec.encode([item], 1)["$headers"][0]
                    if len(item[1]) <= self.SMALL:
                        if len(pairs) >= self.LIMIT:
                            pairs.clear()
                        pairs[item] = encoded
            out.append(encoded)
        return {"$headers": out} if out else codec.encode(items, 1)

    def handler(self, handler: tuple[Any, Any, Any] | None) -> dict[str, Any] | None:
        if handler is None:
            return None
        route, endpoint, params = handler
        if params:
            return handler_document(handler)
        key = (id(route), id(endpoint))
        known = self.handlers.get(key)
        if known is not None and known[0] is route and known[1] is endpoint:
            return known[2]  # type: ignore[no-any-return]
        doc = handler_document(handler)
        if len(self.handlers) >= self.LIMIT:
            self.handlers.clear()
        self.handlers[key] = (route, endpoint, doc)
        return doc


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
        woke = wake.wait(wait)
        wake.clear()
        producer = ref()
        if producer is None:
            return
        producer._idle = False
        if not woke:
            producer._idle_check()
        del producer


def _read_line(sock: socket.socket, limit: int) -> bytes:
    data = b""
    while b"\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ProtocolError("the collector closed the connection without answering")
        data += chunk
        if len(data) > limit:
            raise ProtocolError("the collector's answer is too long")
    return data.split(b"\n", 1)[0]


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
        frame = decode_frame(data.split(b"\n", 1)[0]) if data else None
    except (OSError, ProtocolError):
        return None
    if frame is None or frame.get("type") != "error":
        return None
    return str(frame.get("message", "?"))


_live: weakref.WeakSet[Producer] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    # A server that shuts down cleanly records its lifespan shutdown last: let it reach the viewer.
    for producer in list(_live):
        if producer._generation == fork_generation() and producer._streaming:
            producer.flush(0.5)
