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
under its own tag, on first use; the thread never touches an event loop. Here are the queues
and the loop; the socket is the channel's, the frames the framer's, the clocks the pace's.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from time import perf_counter
from typing import Any

from asgispy.capture.history import History
from asgispy.capture.origin import Origin, fork_generation
from asgispy.capture.record import ConnectionRecord
from asgispy.wire.address import ENV_TOKEN, Address, default_address, parse_address
from asgispy.wire.channel import Channel
from asgispy.wire.controlline import ControlLine, Handler
from asgispy.wire.framing import Batch, Framer
from asgispy.wire.pace import CPU_SHARE, IDLE_POLL, POLL, Pace
from asgispy.wire.protocol import DROPPED, MAX_FRAME, encode_frame
from asgispy.wire.sender import live, run

__all__ = ["Producer"]

logger = logging.getLogger("asgispy")

MiB = 1024 * 1024

#: The longest the end of a lifespan (the app shutting down) waits for the queue to empty.
SHUTDOWN_FLUSH = 0.5
#: Packed connections waiting to be written, at most (a count, and their bytes): past either,
#: they are dropped and counted (the history keeps them, and sends them on the next connect).
MAX_READY, MAX_READY_BYTES = 16384, 4 * MiB


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
        control: Handler | None = None,
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
        self._control_handler = control
        self._reset()
        live.add(self)

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
        #: the connection to the collector, the framing of what goes over it, the thread's pace
        handler = self._control_handler
        self._channel = Channel(
            self.address,
            origin=self._origin,
            token=self.token,
            checks_directory=self._checks_directory,
            control=handler is not None,
        )
        #: the way back from a viewer, for an app that may be controlled (Spy(intercept=True))
        self._control = ControlLine(handler, self._wake.set) if handler is not None else None
        self._framer = Framer(self.redactor, self.max_frame)
        self._pace = Pace(self.cpu_share)
        self._reported = 0
        #: news dropped because a queue was full (connection starts, ended connections)
        self.dropped = 0
        #: whether a collector accepted us and we are streaming to it
        self.connected = False

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

    def report(self, message: dict[str, Any]) -> None:
        """What the app tells its viewer (a held connection, say), sent by the thread soon."""
        if self._control is not None:
            self._control.report(message)

    # Lifecycle ----------------------------------------------------------------------------------

    @property
    def queued(self) -> int:
        """Items waiting for the sender."""
        return len(self._queue) + len(self._ready) + len(self.history._pending)

    @property
    def rests(self) -> int:
        """Times the sender rested to stay within its CPU share."""
        return self._pace.rests

    @property
    def frames_sent(self) -> int:
        """Frames written to collectors, for the curious and for tests."""
        return self._channel.frames_sent

    @property
    def bytes_sent(self) -> int:
        """Bytes written to collectors."""
        return self._channel.bytes_sent

    def _start(self) -> None:
        # The thread holds the producer only weakly: a Spy that is dropped takes its sender along.
        self._thread = threading.Thread(
            target=run, args=(weakref.ref(self),), name="asgispy-sender", daemon=True
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
        channel = self._channel
        self._reset()
        channel.close()

    def flush(self, timeout: float = 1.0) -> bool:
        """Wait up to ``timeout`` for everything recorded so far to be packed and written."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._streaming:
                self.history.pack_pending()
                return True
            if not self.queued and not self._busy and not self._framer.behind():
                return True
            self._wake.set()
            time.sleep(0.002)
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
        self._channel.shutdown()
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
        channel = self._channel
        if channel.sock is None:
            wait = channel.due()
            if wait > 0:
                return min(wait, IDLE_POLL) if history._pending else wait
            try:
                connected = channel.connect()
            except Exception:
                logger.exception("asgispy: unexpected error connecting to %s", self.address)
                connected = False
            if not connected:
                backoff = channel.failed()
                # Nobody listens: the app compacts what ends on its own, so wake only to retry.
                return min(backoff, IDLE_POLL) if history._pending else backoff
            return self._guarded(self._replay)
        control, sock = self._control, channel.sock
        if control is not None and sock is not None:
            retry = self._guarded(lambda: control.exchange(sock))
            if retry is not None:
                return retry
        if (
            self._queue
            or self._ready
            or self._framer.following
            or self.dropped + self.history.unpacked != self._reported
        ):
            rest = self._pace.rest()
            if rest > 0:
                return rest
            retry = self._guarded(self._drain)
            self._busy = False
            return POLL if retry is None else retry
        self._busy = False
        self._idle_check()
        return POLL

    def _guarded(self, work: Callable[[], None]) -> float | None:
        """Do ``work``; if the connection fails, disconnect and say how long to wait to retry."""
        channel = self._channel
        try:
            work()
        except OSError as exc:
            refusal = channel.refusal() or (self._control.refusal if self._control is not None else None)
            if refusal is not None:
                channel.say_once(
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
        wait = self._channel.retry_after(refused)
        self._disconnect()
        return wait

    def _idle_check(self) -> None:
        """Now and then, with nothing to send: notice a collector that went away, so that an idle
        app reconnects (and sends its history) as soon as a new one appears."""
        channel = self._channel
        if channel.sock is not None and self._control is None and self._pace.check_due():
            self._guarded(channel.check_alive)

    def _disconnect(self) -> None:
        if self._control is not None:
            self._control.closed()
        self._streaming = False
        self.history.sink = None
        self.history._overflow.clear()  # in the history still: sent with it on reconnect
        self.connected = False
        self._queue.clear()  # what it held is in the history, and goes out again on reconnect
        self._ready.clear()
        self._ready_bytes = 0
        self._framer.following.clear()
        self._busy = False
        self._channel.close()

    def _replay(self) -> None:
        """Just connected: from now on the request path queues; first send the history."""
        self._framer.following.clear()
        self._queue.clear()
        self._ready.clear()
        self._ready_bytes = 0
        self.history.sink = self._packed
        self._streaming = True
        self.connected = True
        if self._control is not None:
            self._control.opened()
        logger.debug("asgispy: streaming to %s", self.address)
        self._busy = True
        out = Batch(self._channel)
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

    def _drain(self) -> None:
        """Send the news: new connections, packed ones, and what followed ones gained."""
        self._busy = True
        out = Batch(self._channel)
        framer = self._framer
        queue, ready, following = self._queue, self._ready, framer.following
        young = perf_counter() - POLL
        # Connections that began a moment ago are left for the next look: most end by then
        # and go out whole, packed, in one frame.
        while queue and queue[0].t0 < young and not self._closing:
            record = queue.popleft()
            if record.packed is None and record.outcome == "open" and record not in following:
                self._guard(record, framer.begin, out)
        while ready and not self._closing:
            record = ready.popleft()
            self._ready_bytes -= record.size
            self._guard(record, framer.whole_or_finish, out)
        if following and self._pace.follow_due(len(following)):
            for record, sent in list(following.items()):
                if record._flat is not None and record.count() > sent:
                    self._guard(record, framer.more, out)
        dropped = self.dropped + self.history.unpacked
        if dropped != self._reported:
            self._reported = dropped
            out.add(encode_frame([DROPPED, dropped]))
        out.flush()

    def _guard(
        self, record: ConnectionRecord, work: Callable[[ConnectionRecord, Batch], None], out: Batch
    ) -> None:
        try:
            work(record, out)
        except OSError:
            raise
        except Exception as exc:
            self._framer.following.pop(record, None)
            self.dropped += 1
            self._channel.say_once(
                logging.WARNING, "asgispy: could not send connection %s: %r", record.id, exc
            )

    def _whole_or_follow(self, record: ConnectionRecord, out: Batch) -> None:
        """A record from the history: whole if ended, else as far as it goes, then followed."""
        if record.packed is None and record.outcome != "open":
            self.history.repack(record)  # ended while nobody streamed
        if record.packed is not None:
            self._guard(record, self._framer.whole, out)
        elif record.outcome == "open":
            self._guard(record, self._framer.begin, out)
        # An ended record not packed yet comes through the ready queue in a moment.
