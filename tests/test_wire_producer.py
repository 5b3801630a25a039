"""Spy streaming live to a real collector: order, late viewers, dead viewers, stalled viewers,
fork, several event loops. The app is driven in-process; the collector listens on a real socket.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from asgispy.capture import history as history_module
from asgispy.capture.record import ConnectionRecord
from asgispy.spy import Spy
from asgispy.types import RECEIVE, SEND
from asgispy.wire.framing import Framer
from asgispy.wire.handshake import error_frame, welcome_frame
from asgispy.wire.producer import Producer
from asgispy.wire.protocol import (
    CLOSE,
    DROPPED,
    EVENTS,
    MAX_FRAME,
    OPEN,
    FrameReader,
    decode_payload,
    encode_frame,
)
from asgispy.wire.readers import parse_connection
from tests.apps.raw import read_body
from tests.test_wire_collector import CollectorThread

pytestmark = pytest.mark.timeout(60)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Small JSON, echo of a body in chunks, a stream of chunks, and a connection held open."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[-1]
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    path = scope["path"]
    body = await read_body(receive)
    if path == "/hold":
        await HOLD[scope["query_string"]].wait()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    if path == "/live":  # one chunk, then a wait before the last
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await HOLD[scope["query_string"]].wait()
        await send({"type": "http.response.body", "body": b"last"})
        return
    if path == "/stream":
        for i in range(int(scope["query_string"] or 10)):
            await send({"type": "http.response.body", "body": b"chunk %d" % i, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/echo":
        await send({"type": "http.response.body", "body": body})
    else:
        await send({"type": "http.response.body", "body": b'{"ok": true}'})


HOLD: dict[bytes, asyncio.Event] = {}


async def call(
    spy: Any, path: str, body: list[bytes] | None = None, query: bytes = b""
) -> list[dict[str, Any]]:
    chunks = list(body or [b""])
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if chunks:
            chunk = chunks.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST" if body else "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"test"), (b"authorization", b"Bearer secret-token")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    await spy(scope, receive, send)
    return sent


def requests(spy: Any, count: int, path: str = "/json", **kwargs: Any) -> None:
    async def run() -> None:
        for _ in range(count):
            await call(spy, path, **kwargs)

    asyncio.run(run())


def assert_same_as_recorded(collector: CollectorThread, spy: Spy) -> None:
    """What the viewer holds is exactly what Spy recorded (and would export)."""
    tag = spy.origin.tag
    recorded = {r.id: r.document(spy.redactor, tag) for r in spy.records}
    received = collector.call(lambda: {c.id: c.document() for c in collector.store if c.producer == tag})
    assert received.keys() == recorded.keys()
    for id, doc in recorded.items():
        assert received[id] == doc, id


def test_every_event_arrives_in_order_as_recorded(sockdir: Path) -> None:
    with CollectorThread([f"unix:{sockdir}/c.sock"]) as collector:
        spy = Spy(app, address=collector.address)

        async def traffic() -> None:
            await call(spy, "/json")
            await call(spy, "/echo", body=[b"a" * 1000, b"b" * 1000, b"c"])
            await call(spy, "/stream", query=b"100")
            await asyncio.gather(*(call(spy, "/echo", body=[b"%d" % i]) for i in range(50)))

        spy._producer.start()  # type: ignore[union-attr]
        collector.wait_for(lambda s: s.producers)
        asyncio.run(traffic())
        collector.wait_for(lambda s: len(s) == 53 and all(c.outcome == "completed" for c in s))
        assert_same_as_recorded(collector, spy)
        stream = collector.call(lambda: next(c for c in collector.store if c.path == "/stream"))
        assert [e.type for e in stream.events[:3]] == [
            "http.request",
            "http.response.start",
            "http.response.body",
        ]
        assert stream.response_body() == b"".join(b"chunk %d" % i for i in range(100))
        assert [e.t for e in stream.events] == sorted(e.t for e in stream.events)
        # Secrets leave the process masked.
        assert stream.request_headers[1] == (b"authorization", b"[redacted]")
        info = collector.call(lambda: collector.store.producers[spy.origin.tag].info)
        assert (info.pid, info.host, info.app) == (os.getpid(), socket.gethostname(), spy.name)
        spy._producer.close()  # type: ignore[union-attr]


def test_messages_of_an_open_connection_arrive_while_it_is_open(sockdir: Path) -> None:
    # Spy tells the producer of a connection's start and end only; the sender follows the record.
    with CollectorThread([f"unix:{sockdir}/c.sock"]) as collector:
        spy = Spy(app, address=collector.address)
        producer = spy._producer
        assert producer is not None
        producer.start()
        collector.wait_for(lambda s: s.producers)
        HOLD[b"open"] = asyncio.Event()

        def seen(s: Any) -> list[str]:
            conn = s.get(f"{spy.origin.tag}-1")
            return [] if conn is None else [e.type for e in conn.events] + [conn.outcome]

        async def scenario() -> None:
            task = asyncio.create_task(call(spy, "/live", query=b"open"))
            await asyncio.to_thread(collector.wait_for, lambda s: len(seen(s)) == 4)
            assert collector.call(lambda: seen(collector.store)) == [
                "http.request",
                "http.response.start",
                "http.response.body",
                "open",
            ]
            HOLD[b"open"].set()
            await task
            await asyncio.to_thread(collector.wait_for, lambda s: seen(s)[-1:] == ["completed"])

        asyncio.run(scenario())
        assert collector.call(lambda: seen(collector.store)) == [
            "http.request",
            "http.response.start",
            "http.response.body",
            "http.response.body",
            "completed",
        ]
        assert_same_as_recorded(collector, spy)
        producer.close()


def test_a_viewer_started_late_sees_recent_history_then_the_rest_live(sockdir: Path) -> None:
    address = f"unix:{sockdir}/c.sock"
    spy = Spy(app, address=address)
    producer = spy._producer
    assert producer is not None
    HOLD[b"late"] = asyncio.Event()

    async def scenario() -> None:
        for _ in range(5):
            await call(spy, "/json")
        held = asyncio.create_task(call(spy, "/hold", query=b"late"))
        await asyncio.sleep(0.01)
        assert producer.queued == 0  # no viewer: nothing is queued at all
        with CollectorThread([address]) as collector:
            # The producer retries with backoff; once connected it sends the history first.
            await asyncio.to_thread(collector.wait_for, lambda s: len(s) == 6)
            held_conn = collector.call(lambda: collector.store.get(f"{spy.origin.tag}-6"))
            assert held_conn.outcome == "open" and [e.type for e in held_conn.events] == ["http.request"]
            HOLD[b"late"].set()
            await held
            await call(spy, "/json")
            await asyncio.to_thread(
                collector.wait_for, lambda s: len(s) == 7 and all(c.outcome == "completed" for c in s)
            )
            assert_same_as_recorded(collector, spy)
        producer.close()

    asyncio.run(scenario())


def test_a_viewer_killed_mid_stream_then_restarted_gets_everything_once(sockdir: Path) -> None:
    address = f"unix:{sockdir}/c.sock"
    spy = Spy(app, address=address)
    producer = spy._producer
    assert producer is not None
    HOLD[b"kill"] = asyncio.Event()

    async def scenario() -> None:
        first = CollectorThread([address]).__enter__()
        producer.start()
        await asyncio.to_thread(first.wait_for, lambda s: s.producers)
        held = asyncio.create_task(call(spy, "/hold", body=[b"x", b"y"], query=b"kill"))
        for _ in range(10):
            await call(spy, "/json")
        await asyncio.to_thread(first.wait_for, lambda s: len(s) == 11)
        first.stop()  # the viewer dies; the app must not notice
        started = time.perf_counter()
        for _ in range(20):
            await call(spy, "/stream", query=b"5")
        assert time.perf_counter() - started < 2.0
        second = CollectorThread([address]).__enter__()
        try:
            await asyncio.to_thread(second.wait_for, lambda s: len(s) == 31)
            HOLD[b"kill"].set()
            await held
            await asyncio.to_thread(
                second.wait_for, lambda s: all(c.outcome == "completed" for c in s) and len(s) == 31
            )
            assert_same_as_recorded(second, spy)  # every event once: replays are not duplicated
        finally:
            second.stop()
        producer.close()

    asyncio.run(scenario())


def welcome(conn: socket.socket) -> FrameReader:
    """Read a producer's hello byte by byte (so nothing after it is read) and welcome it."""
    reader = FrameReader()
    hello: list[bytes] = []
    while not hello:
        hello = reader.feed(conn.recv(1))
    assert decode_payload(hello[0])["type"] == "hello"
    conn.sendall(encode_frame(welcome_frame()))
    return reader


class StalledViewer:
    """Says welcome, then reads nothing until told to: a viewer frozen in a debugger."""

    def __init__(self, path: str) -> None:
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(1)
        self.reading = threading.Event()
        self.frames: list[Any] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        conn, _ = self.server.accept()
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        reader = welcome(conn)
        self.reading.wait()
        conn.settimeout(5)
        while True:
            try:
                chunk = conn.recv(1 << 20)
            except TimeoutError:
                break
            if not chunk:
                break
            self.frames += [decode_payload(f) for f in reader.feed(chunk)]
        conn.close()


def test_a_stalled_viewer_costs_the_app_nothing_and_drops_are_counted(
    sockdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small bounds, so that 3000 connections go past them: 200 connections to follow, 400 ended
    # ones waiting to be packed (the sender packs them, and it is stuck writing to the viewer).
    max_pending = 400
    monkeypatch.setattr(history_module, "MAX_PENDING", max_pending)
    path = str(sockdir / "c.sock")
    viewer = StalledViewer(path)
    spy = Spy(app, address=f"unix:{path}", history=50, history_bytes=64 * 1024)
    assert spy._producer is not None
    spy._producer.close()
    producer = Producer(f"unix:{path}", origin=lambda: spy.origin, history=spy.history, max_queue=200)
    spy._producer = producer
    producer.start()
    deadline = time.monotonic() + 10
    while not producer.connected and time.monotonic() < deadline:
        time.sleep(0.01)
    assert producer.connected

    peak_queue = peak_queued = 0

    async def traffic() -> None:
        nonlocal peak_queue, peak_queued
        for i in range(3000):
            await call(spy, "/echo", body=[b"z" * 2000])
            peak_queue = max(peak_queue, len(producer._queue))
            peak_queued = max(peak_queued, producer.queued)
            if i % 100 == 0:
                await asyncio.sleep(0)

    # The viewer reads nothing until told to, so a request that waited on it would never finish:
    # all 3000 finishing while it is stalled is the proof (the bound only keeps a failure from
    # hanging the suite; timings are left to the benchmarks).
    asyncio.run(asyncio.wait_for(traffic(), 120))
    assert not viewer.reading.is_set() and not viewer.frames
    assert producer.dropped > 0
    assert peak_queue <= 200  # connections to follow: the bound
    # Everything waiting for the sender (to follow, to pack, packed to send) stays bounded too:
    # the queue, the ended connections waiting (the rest stay unpacked, counted), and at most one
    # packing pass of them ready to send.
    assert peak_queued <= 200 + 2 * max_pending, peak_queued
    assert spy.history.unpacked > 0
    # The viewer wakes up: it gets what the producer could send, and is told how much was dropped.
    dropped = producer.dropped + spy.history.unpacked
    viewer.reading.set()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and [DROPPED, dropped] not in viewer.frames:
        time.sleep(0.02)
    assert [DROPPED, dropped] in viewer.frames
    assert producer.flush(10)
    # Every ended connection reaches the viewer whole, or was counted as never packed.

    def opened() -> list[Any]:
        return [parse_connection(f[1]) for f in list(viewer.frames) if f[0] == OPEN]

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(opened()) + spy.history.unpacked < 3000:
        time.sleep(0.05)
    time.sleep(0.1)  # and nothing more than that arrives
    received = opened()
    assert all(end is not None and end["outcome"] == "completed" for *_, end in received)
    assert all(events[-1][2]["body"] == b"z" * 2000 for _, _, _, _, events, _ in received)
    seqs = [seq for seq, *_ in received]
    assert len(seqs) == len(set(seqs))
    assert len(seqs) + spy.history.unpacked == 3000
    assert len(spy.history) <= 50 and spy.history.used <= 64 * 1024
    assert producer.queued == 0
    producer.close()
    viewer.thread.join(10)


def test_no_viewer_means_nothing_queued_and_nothing_held(sockdir: Path) -> None:
    spy = Spy(app, address=f"unix:{sockdir}/nobody.sock", history=20, history_bytes=128 * 1024)
    producer = spy._producer
    assert producer is not None

    async def traffic() -> None:
        for _ in range(500):
            await call(spy, "/echo", body=[b"q" * 500])
            assert producer.queued == 0  # no viewer: nothing is queued at all

    asyncio.run(traffic())
    assert producer.dropped == 0
    assert not producer.connected
    assert len(spy.history) == 20
    # What is held is the history, each ended connection counted, within bounds.
    assert all(r.size > 1000 for r in spy.records)  # its 1000 bytes of bodies and more
    assert spy.history.used == sum(r.size for r in spy.records) <= 128 * 1024
    assert [r.seq for r in spy.records] == list(range(481, 501))
    assert producer._thread is not None and producer._thread.is_alive()
    producer.close()
    assert not producer._thread.is_alive()


def test_streaming_can_be_turned_off(monkeypatch: pytest.MonkeyPatch, sockdir: Path) -> None:
    assert Spy(app, address=False)._producer is None
    monkeypatch.setenv("ASGISPY_ADDRESS", "off")
    assert Spy(app)._producer is None
    monkeypatch.setenv("ASGISPY_ADDRESS", f"unix:{sockdir}/env.sock")
    producer = Spy(app)._producer
    assert producer is not None and producer.stream and str(producer.address) == f"unix:{sockdir}/env.sock"
    monkeypatch.setenv("ASGISPY_ADDRESS", "bogus")
    assert Spy(app)._producer is None  # a bad environment is logged, never fatal to the app
    with pytest.raises(ValueError, match="an address is"):
        Spy(app, address="bogus")
    # Off means off, even with a viewer listening where the environment points; the history
    # is still kept (compacted when asked), for spy.records and exports.
    with CollectorThread([f"unix:{sockdir}/env.sock"]) as collector:
        monkeypatch.setenv("ASGISPY_ADDRESS", collector.address)
        quiet = Spy(app, address=False, compact=True)
        requests(quiet, 5)
        assert [r.outcome for r in quiet.records] == ["completed"] * 5
        assert all(r.kept is not None for r in quiet.records)
        assert quiet.records[0].document(quiet.redactor, quiet.origin.tag)["scope"]["path"] == "/json"
        time.sleep(0.3)
        assert collector.call(lambda: (len(collector.store), collector.store.producers)) == (0, {})
        assert quiet._producer is None  # no thread, no socket


def test_a_dropped_spy_takes_its_sender_thread_along(sockdir: Path) -> None:
    with CollectorThread([f"unix:{sockdir}/c.sock"]) as collector:
        spy = Spy(app, address=collector.address)
        requests(spy, 3)
        collector.wait_for(lambda s: len(s) == 3)
        producer = spy._producer
        assert producer is not None
        thread = producer._thread
        assert thread is not None
        del spy, producer
        gc.collect()
        thread.join(5)
        assert not thread.is_alive()
        collector.wait_for(lambda s: not next(iter(s.producers.values())).connected)


def test_several_event_loops_in_several_threads(sockdir: Path) -> None:
    with CollectorThread([f"unix:{sockdir}/c.sock"]) as collector:
        spy = Spy(app, address=collector.address)
        spy._producer.start()  # type: ignore[union-attr]
        collector.wait_for(lambda s: s.producers)
        threads = [
            threading.Thread(target=requests, args=(spy, 40, "/stream"), kwargs={"query": b"20"})
            for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        collector.wait_for(lambda s: len(s) == 160 and all(c.outcome == "completed" for c in s))
        assert_same_as_recorded(collector, spy)
        for conn in collector.call(lambda: list(collector.store)):
            assert [e.message.get("body") for e in conn.events[2:-1]] == [b"chunk %d" % i for i in range(20)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_after_fork_the_child_streams_as_a_producer_of_its_own(sockdir: Path) -> None:
    with CollectorThread([f"unix:{sockdir}/c.sock"]) as collector:
        spy = Spy(app, address=collector.address)
        requests(spy, 3)
        parent_tag = spy.origin.tag
        collector.wait_for(lambda s: len(s) == 3)
        pid = os.fork()
        if pid == 0:  # the child: serve a little, let the sender finish, and leave
            code = 1
            try:
                requests(spy, 4, "/stream", query=b"3")
                producer = spy._producer
                assert producer is not None
                until = time.monotonic() + 5
                while not producer.connected and time.monotonic() < until:
                    time.sleep(0.01)  # the child's own sender connects, then sends its history
                code = 0 if producer.flush(5) else 2
            finally:
                os._exit(code)
        deadline = time.monotonic() + 20
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                pytest.fail("the forked child did not finish")
            time.sleep(0.02)
        assert os.waitstatus_to_exitcode(status) == 0
        child = collector.wait_for(
            lambda s: next((p for t, p in s.producers.items() if t != parent_tag), None)
        )
        assert child.info.pid == pid
        collector.wait_for(lambda s: sum(c.producer == child.info.tag for c in s) == 4)
        # The parent's producer goes on as before, under its own tag.
        requests(spy, 2)
        collector.wait_for(lambda s: sum(c.producer == parent_tag for c in s) == 5)
        child_conns = collector.call(lambda: [c for c in collector.store if c.producer == child.info.tag])
        assert [c.seq for c in child_conns] == [1, 2, 3, 4]
        assert all(c.response_body() == b"chunk 0chunk 1chunk 2" for c in child_conns)


def test_a_message_too_big_for_a_frame_is_cut_not_lost(sockdir: Path) -> None:
    with CollectorThread([f"unix:{sockdir}/c.sock"], max_frame=64 * 1024) as collector:
        spy = Spy(app, address=collector.address)
        assert spy._producer is not None
        spy._producer.close()
        spy._producer = Producer(
            collector.address, origin=lambda: spy.origin, history=spy.history, max_frame=64 * 1024
        )
        requests(spy, 1, "/echo", body=[b"w" * 200_000])
        conn = collector.wait_for(lambda s: next((c for c in s if c.outcome == "completed"), None))
        body_event = conn.events[0]
        assert body_event.cut == {"body": 200_000}
        assert 0 < len(body_event.message["body"]) <= 64 * 1024 // 8
        assert conn.response_body() != b""
        spy._producer.close()


# The sender's packing: the viewer reads the same as the codec writes, secrets masked ------------------------

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(alphabet=st.characters(exclude_categories=[]), max_size=12)
    | st.binary(max_size=300)
    | st.sampled_from(["GET", "/items", "http", "1.1", "", "$x", "é"])
    | st.sampled_from([b"", b"/path", b"\xff\x00", b"x" * 300])
    | st.lists(st.sampled_from([b"a" * 97, b"\x00", b"\t\r\n", b"\x7f", "é".encode(), b"\xe9", b"\x1f"])).map(
        b"".join
    )  # long bodies: text, Latin-1, binary
)
_header_lists = st.lists(
    st.tuples(
        st.sampled_from([b"host", b"authorization", b"cookie", b"x-api-key", b"accept", b"\xc3(", b"X-Tok"]),
        st.binary(max_size=20) | st.sampled_from([b"[redacted]", b"secret", b"text/html"]),
    ),
    max_size=6,
)
_values = st.recursive(
    _scalars | _header_lists,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.tuples(st.sampled_from(["127.0.0.1", "::1"]), st.integers(0, 70000) | st.booleans())
        | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=12,
)
_mappings = st.dictionaries(
    st.sampled_from(["type", "headers", "path", "body", "client", "state", "$tag", "é", "text"])
    | st.text(max_size=5),
    _values | _header_lists,
    max_size=8,
)


class _Frames:
    """Stands in for the sender's batch of frames (``Batch``): keeps what it is given, decoded."""

    def __init__(self) -> None:
        self.reader = FrameReader()
        self.frames: list[Any] = []

    def add(self, data: bytes) -> None:
        self.frames += [decode_payload(f) for f in self.reader.feed(data)]


def _through_the_wire(value: dict[str, Any], redactor: Any) -> tuple[list[Any], list[Any], ConnectionRecord]:
    """``value`` as a scope and as messages, framed by the producer every way it sends: followed while
    open (its scope, then its messages as they come), its end, and whole once packed (what a viewer
    started later gets). Returns the scopes and messages a viewer's store reads back, as JSON."""
    from asgispy.model.connection import Connection
    from asgispy.model.event import Event
    from asgispy.wire.readers import parse_end, parse_events

    framer = Framer(redactor, MAX_FRAME)
    out: Any = _Frames()
    record = ConnectionRecord("tag", 1, value, max_events=10)
    # The connection's type (a short text, the collector checks) is made from the scope's; the
    # scope itself still travels with whatever its "type" holds.
    record.type = "http"
    record.add(SEND, value, 1 << 30, wait=0.001)
    framer.begin(record, out)
    record.add(RECEIVE, value, 1 << 30, wait=0.002)
    framer.more(record, out)
    record.finish({}, None, False)
    record.pack(redactor)
    framer.whole_or_finish(record, out)
    framer.whole(record, out)
    assert [f[0] for f in out.frames] == [OPEN, EVENTS, EVENTS, CLOSE, OPEN]
    scopes, messages = [], []
    for frame in out.frames:
        if frame[0] == OPEN:
            seq, kind, started, scope, events, end = parse_connection(frame[1])
            conn = Connection.from_values("tag-1", kind, scope, events, end, seq=seq, started=started)
            scopes.append(conn.scope_doc)
            messages += [e.doc for e in conn.events]
        elif frame[0] == EVENTS:
            messages += [
                Event.from_message(d, t, m, c, None, w).doc for d, t, m, c, w in parse_events(frame[3])
            ]
        else:
            assert parse_end(frame[2])["outcome"] == "completed"
    return scopes, messages, record


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@given(value=_mappings, names=st.sampled_from([(), ("authorization", "cookie", "*token*"), ("*",)]))
@example(value={"type": [], "headers": (None, ("", None))}, names=("*",))  # headers in a tuple
@example(value={"type": "http", "n": 2**70, "s": "a\ud800", "l": [2**64]}, names=())  # the careful way
@settings(max_examples=300, deadline=None)
def test_what_the_viewer_reads_matches_the_codec_byte_for_byte(value: dict[str, Any], names: Any) -> None:
    from asgispy.codec import jsonform
    from asgispy.codec.redact import Redactor

    redactor = Redactor(names)
    expected = orjson.dumps(jsonform.encode(redactor.message(value)))
    assert orjson.dumps(jsonform.encode(jsonform.decode(orjson.loads(expected)))) == expected
    scopes, messages, record = _through_the_wire(value, redactor)
    assert len(scopes) == 2 and len(messages) == 4
    for doc in scopes + messages:
        assert orjson.dumps(doc) == expected
    # Secrets are masked on the wire only: the app's own record still holds what it saw.
    seen = orjson.dumps(jsonform.encode(value))
    assert orjson.dumps(jsonform.encode(record.scope)) == seen
    assert [orjson.dumps(jsonform.encode(e[2])) for e in record.events] == [seen, seen]
    assert orjson.dumps(record.document(redactor, "tag")["scope"]) == expected


@pytest.mark.parametrize(
    "value",
    [
        {"type": "http", "state": {"k": (1, 2**70)}},
        {"type": "http", "extra": ("a\ud800",)},
        {"type": "http", "client": ("127.0.0.1", -(2**63) - 1)},
    ],
    ids=["big int", "lone surrogate", "negative big int"],
)
def test_a_tuple_holding_what_needs_the_careful_way_still_travels(value: dict[str, Any]) -> None:
    from asgispy.codec import jsonform
    from asgispy.codec.redact import Redactor

    redactor = Redactor(())
    expected = orjson.dumps(jsonform.encode(value))
    scopes, messages, _ = _through_the_wire(value, redactor)
    assert {orjson.dumps(doc) for doc in scopes + messages} == {expected}


def test_lookalike_keys_and_values_stay_what_they_were() -> None:
    # A str subclass equals its text, and 1 == 1.0 == True: the packed form keeps them apart.
    from asgispy.codec import jsonform
    from asgispy.codec.redact import Redactor

    class Name(str):
        pass

    redactor = Redactor(())
    cases = [
        {"type": "http", "asgi": {"version": "3.0"}, "state": {}},
        {Name("type"): "http", "asgi": {Name("version"): "3.0"}},
        {Name("type"): "http"},
        {"type": "http", "asgi": {"version": Name("3.0")}},
        {"type": "http", "state": {"n": 1}},
        {"type": "http", "state": {"n": True}},
        {"type": "http", "state": {"n": 1.0}},
        {"type": "http", "n": 1, "m": True, "o": 1.0},
    ]
    for value in cases + cases:
        # What the codec keeps: a key of a str subclass is kept as its text (which the codec
        # spells as a "$dict" of pairs on first encoding, and as a plain key once decoded).
        kept = jsonform.decode(jsonform.encode(value))
        expected = orjson.dumps(jsonform.encode(kept))
        scopes, messages, _ = _through_the_wire(value, redactor)
        assert {orjson.dumps(doc) for doc in scopes + messages} == {expected}, value
    # 1, True and 1.0 stay apart.
    states = [_through_the_wire(v, redactor)[0][0]["state"]["n"] for v in cases[4:7]]
    assert [(type(n), n) for n in states] == [(int, 1), (bool, True), (float, 1.0)]


@given(
    tail=st.lists(
        st.sampled_from([b"\x00", b"\t\r\n", b"\x7f", b"\x0b", "é".encode(), b"\xe9", b"\x1f", b"z"]),
        max_size=8,
    )
)
@settings(max_examples=200, deadline=None)
def test_bodies_read_as_text_exactly_when_clean_utf8(tail: list[bytes]) -> None:
    import re

    from asgispy.codec import jsonform

    data = b"a" * 300 + b"".join(tail)
    clean = re.search(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", data) is None
    try:
        text: str | None = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    expected = text if clean else None
    assert jsonform.bytes_text(data) == expected
    assert ("$bytes" in jsonform.encode(data)) == (expected is not None)


def test_a_token_is_sent_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with CollectorThread(["tcp://127.0.0.1:0"], token="s3cret") as collector:
        monkeypatch.delenv("ASGISPY_TOKEN", raising=False)
        refused = Spy(app, address=collector.address)
        assert refused._producer is not None
        refused._producer.start()
        deadline = time.monotonic() + 10
        while "wrong or missing token" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "refused this app: wrong or missing token" in caplog.text
        assert not refused._producer.connected
        refused._producer.close()
        monkeypatch.setenv("ASGISPY_TOKEN", "s3cret")
        accepted = Spy(app, address=collector.address)
        requests(accepted, 2)
        collector.wait_for(lambda s: len(s) == 2)
        assert set(collector.call(lambda: list(collector.store.producers))) == {accepted.origin.tag}


def test_a_collector_that_drops_us_is_logged_and_not_hammered(
    sockdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = str(sockdir / "c.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(8)
    server.settimeout(0.2)
    spy = Spy(app, address=f"unix:{path}")
    requests(spy, 3)
    assert spy._producer is not None
    spy._producer.start()
    accepted: list[float] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(accepted) < 4:
        try:
            conn, _ = server.accept()
        except TimeoutError:
            continue
        accepted.append(time.monotonic())
        conn.settimeout(2)
        reader = welcome(conn)
        history: list[bytes] = []
        while not history:  # the history begins to arrive: refuse it
            chunk = conn.recv(65536)
            assert chunk, "the producer sent no history"
            history = reader.feed(chunk)
        assert decode_payload(history[0])[0] == OPEN
        conn.sendall(encode_frame(error_frame("this test says no")))
        conn.close()
    spy._producer.close()
    server.close()
    assert "dropped us: this test says no" in caplog.text
    # Dropped at once each time, it waits longer each time rather than resending its history in a loop.
    gaps = [b - a for a, b in itertools.pairwise(accepted)]
    assert len(accepted) == 4, gaps
    assert gaps[-1] >= 1.5 and gaps[-1] > 2 * gaps[0], gaps


def test_ends_lost_with_a_full_queue_still_reach_the_viewer(sockdir: Path) -> None:
    with CollectorThread([f"unix:{sockdir}/c.sock"]) as collector:
        spy = Spy(app, address=collector.address)
        assert spy._producer is not None
        spy._producer.close()
        producer = Producer(collector.address, origin=lambda: spy.origin, history=spy.history, max_queue=16)
        spy._producer = producer
        producer.start()
        deadline = time.monotonic() + 10
        while not producer.connected and time.monotonic() < deadline:
            time.sleep(0.01)
        peak_queue = 0

        async def burst() -> None:  # far beyond what the queue holds
            nonlocal peak_queue
            for _ in range(300):
                await call(spy, "/stream", query=b"5")
                peak_queue = max(peak_queue, len(producer._queue))

        asyncio.run(burst())
        assert producer.dropped > 0
        assert peak_queue <= 16
        collector.wait_for(lambda s: s.dropped == producer.dropped)
        # Every connection reaches the viewer and ends as it did in the app, even where the news
        # of its start was dropped: its end comes through the history, packed.
        collector.wait_for(lambda s: len(s) == 300 and all(c.outcome == "completed" for c in s), timeout=10)
        assert producer.flush(5)
        assert_same_as_recorded(collector, spy)
        # Nothing is held for connections long gone.
        assert not producer._framer.following and producer.queued == 0
        producer.close()


def test_the_sender_rests_within_its_cpu_share_and_catches_up_after(sockdir: Path) -> None:
    """A flood the sender cannot encode within its CPU share makes it rest (and the queue drop)
    rather than take the app's time; once the flood is over, the viewer still gets every
    connection as recorded."""
    with CollectorThread([f"unix:{sockdir}/c.sock"]) as collector:
        spy = Spy(app, address=collector.address, history=3000, stream_cpu=0.02)
        producer = spy._producer
        assert producer is not None and producer.cpu_share == 0.02
        producer.start()
        collector.wait_for(lambda s: s.producers)

        async def flood() -> None:
            # Sustained, not one burst: a burst between two looks is packed and sent in one pass,
            # and the sender only rests between passes.
            for i in range(2000):
                await call(spy, "/echo", body=[b"x" * 4000])
                if i % 50 == 49:
                    await asyncio.sleep(0.02)

        asyncio.run(flood())
        collector.wait_for(lambda s: len(s) == 2000 and all(c.outcome == "completed" for c in s), timeout=30)
        assert producer.rests > 0, "the sender never rested"
        assert_same_as_recorded(collector, spy)
        producer.close()


def test_a_cpu_share_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="cpu_share"):
        Spy(app, address="unix:/nonexistent/c.sock", stream_cpu=0)


def test_reading_the_history_while_streaming_takes_nothing_from_the_viewer(sockdir: Path) -> None:
    with CollectorThread([f"unix:{sockdir}/c.sock"]) as collector:
        spy = Spy(app, address=collector.address)
        producer = spy._producer
        assert producer is not None
        producer.start()
        deadline = time.monotonic() + 10
        while not producer.connected and time.monotonic() < deadline:
            time.sleep(0.01)
        HOLD[b"read"] = asyncio.Event()

        async def scenario() -> None:
            # A connection followed while open, then ended; then short ones. The app reads its
            # own history right after each (a debug page, an export).
            held = asyncio.create_task(call(spy, "/live", query=b"read"))
            await asyncio.to_thread(
                collector.wait_for,
                lambda s: (c := s.get(f"{spy.origin.tag}-1")) is not None and len(c.events) == 3,
            )
            HOLD[b"read"].set()
            await held
            assert len(spy.records) == 1
            for _ in range(10):
                await call(spy, "/json")
                assert spy.records[-1].outcome == "completed"

        asyncio.run(scenario())
        assert producer.flush(5)
        collector.wait_for(lambda s: len(s) == 11 and all(c.outcome == "completed" for c in s), timeout=5)
        assert_same_as_recorded(collector, spy)
        producer.close()
