"""The collector: real sockets, real frames, many producers, bad input, and its security rules."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import orjson
import pytest

from asgispy.codec import pack
from asgispy.store.store import Store
from asgispy.wire.address import Address, default_address, parse_address
from asgispy.wire.collector import AddressTaken, Collector, CollectorError
from asgispy.wire.handshake import hello_frame
from asgispy.wire.protocol import (
    CLOSE,
    DROPPED,
    EVENTS,
    MAX_FRAME,
    OPEN,
    PROTOCOL_VERSION,
    FrameReader,
    decode_payload,
    encode_frame,
)

T = TypeVar("T")


class CollectorThread:
    """A real Collector on its own event loop in a background thread, as a viewer process has.

    ``call`` runs a function on the collector's loop, so tests read the store safely while
    frames keep arriving.
    """

    def __init__(self, addresses: list[str], store: Store | None = None, **options: Any) -> None:
        self.store = store if store is not None else Store()
        self.collector = Collector(self.store, addresses, **options)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.changes: list[tuple[str, str | None]] = []
        self.store.subscribe(
            lambda c: self.changes.append((c.kind, c.connection.id if c.connection else None))
        )

    def __enter__(self) -> CollectorThread:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.collector.start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if not self.thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self.collector.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    @property
    def address(self) -> str:
        return str(self.collector.addresses[0])

    def call(self, fn: Callable[[], T]) -> T:
        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def wait_for(self, predicate: Callable[[Store], Any], timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = self.call(lambda: predicate(self.store))
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting; store has {self.call(lambda: len(self.store))}")
            time.sleep(0.01)


def connection_doc(tag: str, seq: int, events: int = 0, outcome: str = "open") -> dict[str, Any]:
    """A connection in its document form (a session file's, what ``Store.open`` takes)."""
    return {
        "id": f"{tag}-{seq}",
        "seq": seq,
        "producer": tag,
        "type": "http",
        "started": time.time(),
        "duration": None if outcome == "open" else 0.001,
        "outcome": outcome,
        "scope": {"type": "http", "method": "GET", "path": f"/{seq}", "headers": {"$headers": []}},
        "events": [event_doc(i) for i in range(events)],
        "events_dropped": 0,
        "error": None,
        "handler": None,
        "notes": [],
    }


def event_doc(i: int) -> dict[str, Any]:
    """An event in its document form."""
    return {
        "direction": "send",
        "t": i / 1000,
        "message": {"type": "http.response.body", "body": {"$bytes": f"{i}"}},
    }


def connection_value(seq: int, events: int = 0, outcome: str = "open") -> list[Any]:
    """A connection as a producer packs it: ``[seq, type, started, scope, events, end]``."""
    scope = {"type": "http", "method": "GET", "path": f"/{seq}", "headers": [(b"host", b"test")]}
    end = None if outcome == "open" else end_value(outcome, 0.001)
    return [seq, "http", time.time(), scope, [event_value(i) for i in range(events)], end]


def event_value(i: int) -> list[Any]:
    """``[direction, t, message, cut, wait]``: a body chunk sent, its bytes as bytes."""
    return [1, i / 1000, {"type": "http.response.body", "body": f"{i}".encode()}, None, 0.0001]


def end_value(outcome: str = "completed", duration: float = 0.5) -> list[Any]:
    """``[outcome, duration, error, handler, notes, events_dropped]``."""
    return [outcome, duration, None, None, [], 0]


def frame(value: Any) -> bytes:
    """One version-2 frame: the value packed as a producer packs it, its length first."""
    return encode_frame(pack.pack_value(value))


class RawProducer:
    """A producer written by hand: exactly the bytes a test wants on the wire."""

    def __init__(
        self, address: str, tag: str, token: str | None = None, hello: bool = True, max_frame: int = MAX_FRAME
    ) -> None:
        parsed = parse_address(address)
        if parsed.scheme == "unix":
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(parsed.path)
        else:
            self.sock = socket.create_connection((parsed.host, parsed.port))
        self.sock.settimeout(5)
        self.tag = tag
        self.reader = FrameReader(max_frame)
        self.unread: list[bytes] = []
        self.reply: Any = None
        if hello:
            self.send(hello_frame(tag, "testhost", 4242, "tests:app", time.time(), token))
            self.reply = self.read_frame()

    def send(self, value: Any) -> None:
        self.sock.sendall(frame(value))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_frame(self) -> Any:
        """The collector's next frame, decoded (None if it hung up first)."""
        while not self.unread:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.unread += self.reader.feed(chunk)
        return decode_payload(self.unread.pop(0))

    def read_line(self) -> bytes:
        """What a collector says to a version-1 producer: one JSON line."""
        data = b""
        while not data.endswith(b"\n"):
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data

    def closed_by_peer(self, timeout: float = 5.0) -> bool:
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def collector(sockdir: Path) -> Iterator[CollectorThread]:
    with CollectorThread([f"unix:{sockdir}/c.sock"]) as running:
        yield running


# Feeding the store -------------------------------------------------------------------------------


def test_frames_build_connections_in_order_and_repeats_are_ignored(collector: CollectorThread) -> None:
    producer = RawProducer(collector.address, "aaa111")
    assert producer.reply == {
        "type": "welcome",
        "protocol": PROTOCOL_VERSION,
        "asgispy": producer.reply["asgispy"],
    }
    producer.send([OPEN, connection_value(1, events=2)])
    producer.send([EVENTS, 1, 2, [event_value(2), event_value(3)]])
    # Sent again after a reconnect: what is already known is ignored, the rest appended.
    producer.send([EVENTS, 1, 2, [event_value(i) for i in range(2, 6)]])
    producer.send([EVENTS, 1, 3, [event_value(3)]])
    producer.send([CLOSE, 1, end_value("completed", 0.5)])
    producer.send([DROPPED, 7])
    conn = collector.wait_for(
        lambda s: (c := s.get("aaa111-1")) is not None and c.outcome == "completed" and c
    )
    assert [e.message["body"] for e in conn.events] == [b"0", b"1", b"2", b"3", b"4", b"5"]
    assert conn.duration == 0.5
    assert conn.request_headers == [(b"host", b"test")]
    collector.wait_for(lambda s: s.dropped == 7)
    info = collector.call(lambda: collector.store.producers["aaa111"].info)
    assert (info.host, info.pid, info.app) == ("testhost", 4242, "tests:app")
    assert collector.call(lambda: collector.store.producers["aaa111"].events) == 6  # nothing counted twice
    producer.close()


def test_a_packed_connection_buffer_is_taken_as_it_is(collector: CollectorThread) -> None:
    # The very bytes the producer sends: a packed connection buffer, embedded as it is.
    producer = RawProducer(collector.address, "raw001")
    packed = pack.dumps(connection_value(1, events=3, outcome="completed"))
    producer.send_raw(encode_frame([OPEN, msgspec.Raw(packed)]))
    conn = collector.wait_for(lambda s: s.get("raw001-1"))
    assert (conn.outcome, conn.path, conn.response_body()) == ("completed", "/1", b"012")
    producer.close()


def test_many_producers_at_once(collector: CollectorThread) -> None:
    producers = [RawProducer(collector.address, f"p{n:05d}") for n in range(20)]
    for seq in range(1, 26):
        for p in producers:
            p.send([OPEN, connection_value(seq, events=3, outcome="completed")])
    collector.wait_for(lambda s: len(s) == 20 * 25)
    assert collector.call(lambda: collector.collector.producers_connected) == 20
    by_producer = collector.call(lambda: {t: p.connections for t, p in collector.store.producers.items()})
    assert by_producer == {p.tag: 25 for p in producers}
    for p in producers:
        p.close()
    collector.wait_for(lambda s: all(not p.connected for p in s.producers.values()))


def test_a_producer_that_vanishes_leaves_its_open_connections_cut_off(collector: CollectorThread) -> None:
    producer = RawProducer(collector.address, "gone01")
    other = RawProducer(collector.address, "stays1")
    producer.send([OPEN, connection_value(1, events=1)])
    producer.send([OPEN, connection_value(2, events=1, outcome="completed")])
    other.send([OPEN, connection_value(1, events=1)])
    collector.wait_for(lambda s: len(s) == 3)
    producer.sock.close()  # no goodbye: the process died
    collector.wait_for(lambda s: s.get("gone01-1").outcome == "cut off")
    assert collector.call(lambda: collector.store.get("gone01-2").outcome) == "completed"
    assert collector.call(lambda: collector.store.get("stays1-1").outcome) == "open"
    assert collector.call(lambda: collector.store.producers["gone01"].connected) is False
    # The survivor goes on.
    other.send([EVENTS, 1, 1, [event_value(1)]])
    collector.wait_for(lambda s: len(s.get("stays1-1").events) == 2)
    other.close()


def test_a_producer_reaches_only_its_own_connections(collector: CollectorThread) -> None:
    # Connections are named by a seq within the sender's own tag: the same seq from another
    # producer is another connection, and one it never opened is ignored, not created.
    mine = RawProducer(collector.address, "mine01")
    other = RawProducer(collector.address, "other1")
    mine.send([OPEN, connection_value(1, events=1)])
    collector.wait_for(lambda s: s.get("mine01-1") is not None)
    other.send([EVENTS, 1, 1, [event_value(1)]])
    other.send([CLOSE, 1, end_value("exception")])
    other.send([OPEN, connection_value(2)])
    collector.wait_for(lambda s: s.get("other1-2") is not None)
    conn = collector.call(lambda: collector.store.get("mine01-1"))
    assert (conn.outcome, len(conn.events)) == ("open", 1)
    assert collector.call(lambda: sorted(c.id for c in collector.store)) == ["mine01-1", "other1-2"]
    for p in (mine, other):
        p.close()


# Bad input ----------------------------------------------------------------------------------------


def _frame_of_payload(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


@pytest.mark.parametrize(
    ("garbage", "reason"),
    [
        pytest.param(_frame_of_payload(b"\xc1"), "malformed frame", id="not MessagePack"),
        pytest.param(_frame_of_payload(b"\x93\x01\x02"), "malformed frame", id="MessagePack cut short"),
        pytest.param(b"this is not json\n", "oversized frame", id="text"),
        pytest.param(frame({"type": "open"}), "not an array that starts with its kind", id="a map"),
        pytest.param(frame([]), "not an array that starts with its kind", id="empty"),
        pytest.param(frame(["open", 1]), "not an array that starts with its kind", id="kind as text"),
        pytest.param(frame([99]), "unknown frame kind 99", id="unknown kind"),
        pytest.param(frame([EVENTS]), "malformed events frame", id="events, no fields"),
        pytest.param(
            frame([EVENTS, "good01-1", 0, [event_value(0)]]),
            "malformed frame: events (Expected `int`, got `str` - at `$[1]`)",
            id="another's id",
        ),
        pytest.param(
            frame([EVENTS, 1, -1, [event_value(0)]]), "a negative seq or index", id="negative index"
        ),
        pytest.param(
            frame([EVENTS, 1, 0, [[5, 0.0, {}, None, None]]]), "an event direction of 5", id="direction"
        ),
        pytest.param(
            frame([EVENTS, 1, 0, [[1, "now", {}, None, None]]]),
            "malformed frame: events (Expected `float`, got `str` - at `$[3][0][1]`)",
            id="time",
        ),
        pytest.param(
            frame([OPEN, ["other-1", "http", 0.0, {}, [], None]]),
            "malformed frame: a connection (Expected `int`, got `str` - at `$[1][0]`)",
            id="seq",
        ),
        pytest.param(
            frame([OPEN, [3, "x" * 65, 0.0, {}, [], None]]), "a connection type over 64 characters", id="type"
        ),
        pytest.param(frame([OPEN, [3, "http", 0.0, [], [], None]]), "a scope that is not a map", id="scope"),
        pytest.param(
            frame([OPEN, [2, "http", 0.0, {}, [], ["exploded", 0.1, None, None, [], 0]]]),
            "an outcome of 'exploded'",
            id="outcome",
        ),
        pytest.param(frame([CLOSE, 1, None]), "a close frame without an end", id="close without end"),
        pytest.param(frame([DROPPED, "many"]), "dropped frame with a total", id="dropped total"),
        pytest.param(
            encode_frame([EVENTS, 1, 0, [[1, 0.0, {"x": msgspec.msgpack.Ext(9, b"?")}, None, None]]]),
            "an event message (not a packed value: unknown extension type 9)",
            id="extension in a message",
        ),
        pytest.param(
            encode_frame([OPEN, [3, "http", 0.0, {"x": msgspec.msgpack.Ext(9, b"?")}, [], None]]),
            "unknown extension type 9",
            id="extension in a scope",
        ),
    ],
)
def test_garbage_drops_only_that_producer(
    collector: CollectorThread, caplog: pytest.LogCaptureFixture, garbage: bytes, reason: str
) -> None:
    caplog.set_level(logging.WARNING, logger="asgispy.collector")
    good = RawProducer(collector.address, "good01")
    bad = RawProducer(collector.address, "bad001")
    good.send([OPEN, connection_value(1)])
    bad.send([OPEN, connection_value(1)])
    collector.wait_for(lambda s: len(s) == 2)
    bad.send_raw(garbage)
    error = bad.read_frame()
    assert error["type"] == "error" and reason in error["message"], error
    assert bad.closed_by_peer()
    collector.wait_for(lambda s: s.get("bad001-1").outcome == "cut off")
    assert any("bad001" in r.getMessage() and reason in r.getMessage() for r in caplog.records)
    # The well-behaved producer is untouched, and new ones are welcome.
    good.send([EVENTS, 1, 0, [event_value(0)]])
    collector.wait_for(lambda s: len(s.get("good01-1").events) == 1)
    assert collector.call(lambda: collector.store.producers["good01"].connected)
    assert collector.call(lambda: collector.store.get("good01-1").outcome) == "open"
    late = RawProducer(collector.address, "late01")
    assert late.reply["type"] == "welcome"
    for p in (good, late, bad):
        p.close()


def test_an_oversized_frame_is_refused_without_buffering_it(sockdir: Path) -> None:
    with CollectorThread([f"unix:{sockdir}/c.sock"], max_frame=64 * 1024) as collector:
        bad = RawProducer(collector.address, "big001")
        good = RawProducer(collector.address, "good01")
        # Only the length and a few bytes: the collector refuses before the rest ever comes.
        bad.send_raw((200 * 1024).to_bytes(4, "big") + b"\x92\x02" + b"x" * 100)
        error = bad.read_frame()
        assert error["type"] == "error"
        assert "oversized frame (204800 bytes; the limit is 65536)" in error["message"]
        assert bad.closed_by_peer()
        # A producer that writes it all at once is cut off too (it may hang up mid-write).
        big = RawProducer(collector.address, "big002")
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            big.send_raw(frame([EVENTS, 1, 0, [[1, 0.0, {"body": b"x" * (200 * 1024)}, None, None]]]))
        assert big.closed_by_peer()
        # A frame just within the bound is taken.
        good.send(
            [OPEN, [1, "http", 0.0, {"type": "http"}, [[1, 0.0, {"body": b"y" * 60_000}, None, None]], None]]
        )
        conn = collector.wait_for(lambda s: s.get("good01-1"))
        assert conn.events[0].payload_size == 60_000
        assert collector.call(lambda: sorted(collector.store.producers)) == ["big001", "big002", "good01"]
        assert collector.call(lambda: collector.collector.producers_connected) == 1
        good.close()


def test_unknown_protocol_version_is_refused_clearly(collector: CollectorThread) -> None:
    producer = RawProducer(collector.address, "new001", hello=False)
    hello = hello_frame("new001", "h", 1, "app", 0.0)
    hello["protocol"] = PROTOCOL_VERSION + 1
    hello["accepts"] = [PROTOCOL_VERSION + 1]
    hello["asgispy"] = "9.9.9"
    producer.send(hello)
    error = producer.read_frame()
    assert error["type"] == "error"
    assert f"speaks protocol {PROTOCOL_VERSION}," in error["message"]
    assert f"(asgispy 9.9.9) speaks [{PROTOCOL_VERSION + 1}]" in error["message"]
    assert "use the same asgispy on both sides" in error["message"]
    assert producer.closed_by_peer()
    # A newer producer that can still speak this version is welcome.
    both = RawProducer(collector.address, "both01", hello=False)
    both.send({**hello, "producer": "both01", "accepts": [PROTOCOL_VERSION + 1, PROTOCOL_VERSION]})
    assert both.read_frame()["type"] == "welcome"
    both.close()
    # A version-1 producer (JSON lines) is told in its own words.
    old = RawProducer(collector.address, "old001", hello=False)
    old.send_raw(b'{"type": "hello", "protocol": 1, "producer": "old001"}\n')
    said = orjson.loads(old.read_line())
    assert said["type"] == "error"
    assert "speaks wire protocol 2 and the app's asgispy speaks protocol 1" in said["message"]
    assert old.closed_by_peer()
    assert collector.call(lambda: list(collector.store.producers)) == ["both01"]


def test_frames_before_hello_are_refused(collector: CollectorThread) -> None:
    producer = RawProducer(collector.address, "x", hello=False)
    producer.send([OPEN, connection_value(1)])
    assert "expected a hello frame first" in producer.read_frame()["message"]
    assert producer.closed_by_peer()
    assert collector.call(lambda: len(collector.store)) == 0


def test_frames_split_anywhere_are_reassembled(collector: CollectorThread) -> None:
    producer = RawProducer(collector.address, "split1")
    data = b"".join(frame([OPEN, connection_value(n, events=2)]) for n in (1, 2))
    for i in range(0, len(data), 7):
        producer.send_raw(data[i : i + 7])
        time.sleep(0.0005)
    collector.wait_for(lambda s: len(s) == 2)
    assert collector.call(lambda: [len(c.events) for c in collector.store]) == [2, 2]
    producer.close()


# Security ----------------------------------------------------------------------------------------


def test_unix_socket_is_0600_in_a_0700_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    runtime = Path(tempfile.mkdtemp(prefix="asgispy-xdg-"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    address = default_address()
    assert address.path == str(runtime / "asgispy" / "asgispy.sock")
    with CollectorThread([str(address)]) as collector:
        assert collector.collector.addresses == [address]
        assert stat.S_IMODE(os.stat(runtime / "asgispy").st_mode) == 0o700
        st = os.stat(address.path)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o600
    assert not os.path.exists(address.path)  # removed at stop
    os.rmdir(runtime / "asgispy")
    os.rmdir(runtime)


def test_a_directory_owned_by_someone_else_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    if os.getuid() != 0:
        pytest.skip("making a directory owned by another user needs root")
    runtime = Path(tempfile.mkdtemp(prefix="asgispy-xdg-"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    squatted = runtime / "asgispy"
    squatted.mkdir(mode=0o777)
    os.chown(squatted, 12345, 12345)
    collector = Collector(Store(), [str(default_address())])
    with pytest.raises(CollectorError, match="belongs to another user"):
        asyncio.run(collector.start())
    squatted.rmdir()
    runtime.rmdir()


def test_a_stale_socket_is_replaced_and_a_live_one_is_not(sockdir: Path) -> None:
    path = sockdir / "c.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: a collector that died
    with CollectorThread([f"unix:{path}"]) as first:
        assert RawProducer(first.address, "one001").reply["type"] == "welcome"
        second = Collector(Store(), [f"unix:{path}"])
        with pytest.raises(AddressTaken, match="already listens"):
            asyncio.run(second.start())
        # The live collector still serves.
        assert RawProducer(first.address, "two002").reply["type"] == "welcome"


def test_tcp_binds_loopback_and_reports_its_port() -> None:
    with CollectorThread(["tcp://127.0.0.1:0"]) as collector:
        bound = collector.collector.addresses[0]
        assert bound.scheme == "tcp" and bound.host == "127.0.0.1" and bound.port > 0
        assert RawProducer(str(bound), "tcp001").reply["type"] == "welcome"


def test_a_tcp_port_in_use_is_told_apart_from_other_failures() -> None:
    """A port another listener holds may come free (the MCP server waits for it); the reason says which."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        with pytest.raises(AddressTaken, match=f"cannot listen on tcp://127.0.0.1:{port}"):
            asyncio.run(Collector(Store(), [f"tcp://127.0.0.1:{port}"]).start())


def test_tcp_beyond_loopback_needs_the_explicit_flag_and_a_token() -> None:
    with pytest.raises(CollectorError, match="not a loopback address"):
        Collector(Store(), ["tcp://0.0.0.0:0"])
    with pytest.raises(CollectorError, match="requires a token"):
        Collector(Store(), ["tcp://0.0.0.0:0"], allow_remote=True)
    collector = Collector(Store(), ["tcp://0.0.0.0:0"], allow_remote=True, token="s3cret")
    assert collector.requested == [Address("tcp", host="0.0.0.0", port=0)]


def test_token_is_checked() -> None:
    with CollectorThread(["tcp://127.0.0.1:0"], token="s3cret") as collector:
        for token in (None, "wrong"):
            refused = RawProducer(collector.address, "nope01", token=token)
            assert refused.reply == {
                "type": "error",
                "message": "wrong or missing token",
                "protocol": PROTOCOL_VERSION,
                "asgispy": refused.reply["asgispy"],
            }
            assert refused.closed_by_peer()
        accepted = RawProducer(collector.address, "yes001", token="s3cret")
        assert accepted.reply["type"] == "welcome"
        accepted.send([OPEN, connection_value(1)])
        collector.wait_for(lambda s: s.get("yes001-1") is not None)
        assert set(collector.call(lambda: list(collector.store.producers))) == {"yes001"}
